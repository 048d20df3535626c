"""The REST API fuzzed from its own OpenAPI file, against real node processes.

Schemathesis reads node/openapi.yaml and, for every operation, generates requests that fit
the document (positive) and requests that break it (negative: wrong types, unknown fields and
parameters, bad encodings). Each is sent to a running node of a 4-node plan consortium and the
answer must be documented: no 5xx, a status code the operation lists, the documented content
type, a body that matches the documented schema. On top of that, signed transactions with
random byte edits are posted as msgpack and as JSON. Before and after each operation's run
every node reports the same height, state root and mempool: nothing a client sends without a
valid signature changes a node.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from e2e_helpers import Net
from ledger.types import Transaction
from node.api import OPENAPI_PATH, OpenApiDocument

pytestmark = pytest.mark.e2e

# Examples per operation and mode: bounded for CI; a long run sets HUZHU_FUZZ_EXAMPLES.
EXAMPLES = int(os.environ.get("HUZHU_FUZZ_EXAMPLES", "40"))
TARGET = 1  # a backup node: what it admits it forwards to the primary
SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
# Negative cases need something to break: a parameter or a body.
CASES = [(operation, mode) for operation in OPERATIONS
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode is GenerationMode.POSITIVE or list(operation.iter_parameters())
         or list(operation.body)]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
OPENAPI = OpenApiDocument()
TRIED: Counter = Counter()
YEAR_MS = 365 * 86_400_000

FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                         derandomize="HUZHU_FUZZ_EXAMPLES" not in os.environ,
                         suppress_health_check=list(HealthCheck))


def enrollment(net: Net, number: int) -> Transaction:
    registrar = net.role_key("registrar")
    seed = b"api fuzz member %d" % number
    return Transaction.create(registrar, net.chain_id, number, "member.enroll", {
        "public_key": hashlib.sha256(seed).digest(),
        "identity": hashlib.sha256(b"identity" + seed).digest(),
        "birth_ms": net.genesis["genesis_time_ms"] - 30 * YEAR_MS})


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    net = Net(tmp_path_factory.mktemp("apifuzz") / "net", app="plan")
    try:
        net.start_all()
        # Some history to query: a committed enrollment (a member, a block, a receipt).
        status, body = net.post(TARGET, "/txs?wait=commit",
                                json.dumps({"tx": enrollment(net, 0).encode().hex()}).encode())
        assert status == 200, body
        yield net
    finally:
        net.close()
        print(f"\nAPI requests fuzzed: {sum(TRIED.values())} "
              f"({', '.join(f'{name}: {count}' for name, count in sorted(TRIED.items()))})")


def quiet_state(net: Net) -> tuple[str, int]:
    """(state root, committed transactions) once every node has the same root and an empty
    mempool. Heights are left out: a chain may make empty blocks while idle, which change
    neither the root nor the transactions."""
    def read() -> tuple[str, int] | None:
        rows = set()
        for index in range(len(net.homes)):
            status, body = net.get(index, "/status")
            if status != 200 or body["mempool_txs"] != 0:
                return None
            rows.add((body["core"]["app_hash"], body["core"]["stats"].get("executed_txs", 0)))
        return rows.pop() if len(rows) == 1 else None

    return net.wait_until(read, "every node at one state root, mempools empty")


@pytest.mark.parametrize(("operation", "mode"), CASES,
                         ids=[f"{op.method.upper()} {op.path} {mode.value}" for op, mode in CASES])
def test_every_answer_is_documented(net: Net, operation, mode: GenerationMode) -> None:
    before = quiet_state(net)
    base_url = net.configs[TARGET].api_url
    session = requests.Session()

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(mode))
    def run(case) -> None:
        response = case.call(base_url=base_url, session=session, timeout=30)
        TRIED[mode.value] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    finally:
        session.close()
    assert net.get(TARGET, "/healthz")[0] == 200, "the node stopped answering"
    assert quiet_state(net) == before


@st.composite
def edited(draw: st.DrawFn, raw: bytes) -> bytes:
    position = draw(st.integers(0, len(raw) - 1))
    edit = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
    if edit == "flip":
        return raw[:position] + bytes([raw[position] ^ draw(st.integers(1, 255))]) \
            + raw[position + 1:]
    if edit == "truncate":
        return raw[:position]
    if edit == "insert":
        return raw[:position] + draw(st.binary(min_size=1, max_size=8)) + raw[position:]
    return raw[:position] + raw[position + draw(st.integers(1, 8)):]


def test_edited_signed_transactions_are_refused(net: Net) -> None:
    before = quiet_state(net)
    unsent = enrollment(net, 1).encode()  # signed by the registrar, never submitted
    url = net.configs[TARGET].api_url + "/txs"
    session = requests.Session()

    @FUZZ_SETTINGS
    @given(data=edited(unsent), as_json=st.booleans())
    def run(data: bytes, as_json: bool) -> None:
        if as_json:
            response = session.post(url, json={"tx": data.hex()}, timeout=30)
        else:
            response = session.post(url, data=data, timeout=30,
                                    headers={"Content-Type": "application/msgpack"})
        TRIED["edited transactions"] += 1
        body = response.json()
        OPENAPI.validate("POST", "/txs", response.status_code, body)
        assert response.status_code in (400, 422), (response.status_code, body)

    try:
        run()
    finally:
        session.close()
    assert quiet_state(net) == before
