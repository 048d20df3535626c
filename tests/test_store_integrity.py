"""Damage to a real LevelDB store is reported as StoreError("corrupt") and never passed on."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import aiohttp
import plyvel
import pytest

from node.storage import LevelDBStore, StoreError
from node.storage.base import block_key, tx_key
from tests.node.test_api import start_node
from tests.test_storage import make_block, make_certificate, make_receipts

BLOCKS = 30


def _write_chain(path: Path) -> list:
    blocks = [make_block(height) for height in range(1, BLOCKS + 1)]
    with LevelDBStore(path) as store:
        for block in blocks:
            with store.batch() as batch:
                batch.put_block(block)
                batch.put_certificate(make_certificate(block))
                batch.put_receipts(block.height, make_receipts(block))
    db = plyvel.DB(str(path))
    db.compact_range()  # everything into .ldb table files
    db.close()
    return blocks


def test_a_byte_flipped_in_an_ldb_file_is_corrupt_and_never_served(tmp_path):
    path = tmp_path / "db"
    blocks = _write_chain(path)
    target = blocks[9].txs[0].signature  # inside block 10's value, a field decode cannot check
    tables = [p for p in path.glob("*.ldb") if target in p.read_bytes()]
    assert tables, "the block's bytes are in a table file"
    data = bytearray(tables[0].read_bytes())
    where = data.index(target) + 5
    data[where] ^= 0xFF
    tables[0].write_bytes(bytes(data))
    with LevelDBStore(path) as store:
        with pytest.raises(StoreError) as raised:
            store.get_served_block(10)
        assert raised.value.code == "corrupt"
        with pytest.raises(StoreError) as raised:
            store.get_block_raw(10)
        assert raised.value.code == "corrupt"


def test_a_served_block_is_rehashed_against_its_certificate(tmp_path):
    path = tmp_path / "db"
    blocks = _write_chain(path)
    other = make_block(10, variant=1)
    db = plyvel.DB(str(path))  # other txs under block 10's header: the block hash is unchanged
    db.put(block_key(10), type(blocks[9])(blocks[9].header, other.txs).encode())
    db.close()
    with LevelDBStore(path) as store:
        assert store.get_served_block(9)[1] == blocks[8]
        with pytest.raises(StoreError) as raised:
            store.get_served_block(10)
        assert raised.value.code == "corrupt"


async def test_a_tx_index_entry_past_the_chain_answers_store_corrupt(tmp_path):
    runtime = await start_node(tmp_path / "net")
    try:
        tx_id = bytes(range(32))
        with runtime.store.batch() as batch:
            batch._add(tx_key(tx_id), struct.pack(">QQ", 10**9, 0))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{runtime.config.api_url}/txs/{tx_id.hex()}") as reply:
                body = json.loads(await reply.read())
                assert reply.status == 500
                assert body["error"]["code"] == "store_corrupt"
            async with session.get(f"{runtime.config.api_url}/readyz") as reply:
                assert reply.status == 503
                assert "store_corrupt" in (await reply.json())["error"]["message"]
            async with session.get(f"{runtime.config.api_url}/metrics") as reply:
                assert 'event="store_corrupt"} 1.0' in await reply.text()
    finally:
        await runtime.stop()
