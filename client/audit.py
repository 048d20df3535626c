"""Chain audit: verify a whole chain from genesis, trusting nothing but the genesis file.

For every height, from one or more sources (a node's LevelDB copy, or nodes' REST APIs):

- the block decodes canonically, is for this chain, links to its parent's hash (block 1 to
  the genesis hash), and its timestamps never go backwards;
- its commit certificate names it and carries 2f+1 distinct valid validator signatures;
- its structure holds (tx_count, tx_root over the tx ids, no duplicate tx) and every
  transaction's signature verifies;
- re-executing it with the application over a fresh in-memory store, from genesis, gives
  the state and receipts that the header h + pipeline_depth certifies (header h carries
  the app_hash and results_hash of the state after h - pipeline_depth, see INTERFACES.md);
- the receipts a source stored equal the re-executed ones, and for a store, the state it
  holds equals the re-executed state after its last block, key for key;
- the plan's settlement conservation holds (total debited + carry = booked + fees, and booked
  = credited + awaiting payment);
- given several sources, they hold the same block at every height they share.

The audit stops at the first height where anything fails and names it with the checks that
failed there; later heights built on a bad one would only repeat the failure.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ledger import merkle
from ledger.errors import HuzhuError, InvalidBlock, InvalidCertificate
from ledger.types import Block, BlockHeader, CommitCertificate, Receipt, results_hash

PREFETCH_BLOCKS = 16  # blocks fetched ahead of verification from a remote source
MAX_STATE_DIFFS_REPORTED = 5


class AuditError(HuzhuError):
    """The audit could not run (bad usage, unreadable source, unreachable node): exit 1."""

    default_code = "audit_error"


class CorruptData(HuzhuError):
    """A source holds bytes for an item that do not decode: a finding, not a usage error.

    ``code`` names the item (block, certificate, receipts)."""


# --- sources ------------------------------------------------------------------------------

class ChainSource(Protocol):
    """Where the audit reads a chain from: a node's store or a node's API."""

    name: str
    stores_receipts: bool

    def latest_height(self) -> int: ...

    def fetch(self, height: int, want_receipts: bool) -> tuple[bytes | None, bytes | None,
                                                             list[Receipt] | None]:
        """(raw block, raw certificate, stored receipts) at ``height``; None for what is
        missing (receipts also None when not wanted). Raises ``CorruptData`` for bytes that do
        not decode and ``AuditError`` when the source cannot be read at all."""
        ...

    def state_items(self) -> Iterator[tuple[bytes, bytes]] | None:
        """Every application state pair in key order, or None if the source offers none."""
        ...

    def close(self) -> None: ...


class StoreSource:
    """A node's store (a ``node.storage.Store``), read directly."""

    stores_receipts = True  # a node stores receipts with every block: missing ones are lost

    def __init__(self, store: Any, name: str = "store") -> None:
        self.store = store
        self.name = name

    def latest_height(self) -> int:
        return self.store.latest_height()

    def block_raw(self, height: int) -> bytes | None:
        return self.store.get_block_raw(height)

    def _read(self, what: str, read: Callable[[int], Any], height: int) -> Any:
        """A stored item; bytes that no longer decode are a finding (``CorruptData``)."""
        from node.storage import StoreError

        try:
            return read(height)
        except StoreError as exc:
            if exc.code != "corrupt":
                raise
            raise CorruptData(what, exc.message) from None

    def certificate_raw(self, height: int) -> bytes | None:
        certificate = self._read("certificate", self.store.get_certificate, height)
        return None if certificate is None else certificate.encode()

    def receipts(self, height: int) -> list[Receipt] | None:
        # A store that has the block but no receipts for it lost them: that is a finding.
        return self._read("receipts", self.store.get_receipts, height)

    def state_items(self) -> Iterator[tuple[bytes, bytes]] | None:
        return self.store.iterate_state()

    def tx_index_findings(self, latest: int) -> Iterator[tuple[int, str, str]]:
        """(height, check, message) for each tx index entry that does not match its block."""
        blocks: dict[int, list[bytes]] = {}
        for tx_id, height, index in self.store.iterate_tx_index():
            key = f"t/{tx_id.hex()}"
            if not 1 <= height <= latest:
                yield height, "tx_index", f"{key} points at height {height}, past {latest}"
                continue
            if height not in blocks:
                block = self._read("block", self.store.get_block, height)
                blocks = {height: [tx.tx_id for tx in block.txs] if block else []}
            tx_ids = blocks[height]
            if index >= len(tx_ids) or tx_ids[index] != tx_id:
                yield height, "tx_index", f"{key} points at a block {height} without it at {index}"

    def fetch(self, height: int, want_receipts: bool) -> tuple[bytes | None, bytes | None,
                                                             list[Receipt] | None]:
        return (self.block_raw(height), self.certificate_raw(height),
                self.receipts(height) if want_receipts else None)

    def close(self) -> None:
        self.store.close()


class HttpSource:
    """A node's REST API: ``GET /blocks/{h}`` gives the canonical encodings (base64) of the
    block, its certificate and its receipts, which are verified exactly as a store's bytes."""

    stores_receipts = False  # a null "receipts" in an answer: the node did not send them

    def __init__(self, client: Any) -> None:
        self.client = client
        self.name = client.base_url

    def latest_height(self) -> int:
        from client.api import ClientError

        try:
            height = self.client.status().get("height")
        except ClientError as exc:
            raise AuditError(exc.code, str(exc)) from None
        if type(height) is not int or height < 0:
            raise AuditError("bad_status", f"{self.name} reports no height")
        return height

    def fetch(self, height: int, want_receipts: bool) -> tuple[bytes | None, bytes | None,
                                                             list[Receipt] | None]:
        from client.api import ClientError, NotFound

        try:
            answer = self.client.block(height)
        except NotFound:
            return None, None, None
        except ClientError as exc:
            raise AuditError(exc.code, str(exc)) from None
        raw = answer.get("raw") if isinstance(answer, dict) else None
        if not isinstance(raw, dict):
            raise CorruptData("block", "the node's answer has no raw encodings")
        block = _b64(raw.get("block"), "block")
        certificate = _b64(raw.get("certificate"), "certificate") \
            if raw.get("certificate") is not None else None
        receipts = None
        if want_receipts and raw.get("receipts") is not None:
            try:
                receipts = [Receipt.decode(_b64(item, "receipts")) for item in raw["receipts"]]
            except (HuzhuError, TypeError) as exc:
                raise CorruptData("receipts", f"stored receipts do not decode: {exc}") from None
        return block, certificate, receipts

    def state_items(self) -> Iterator[tuple[bytes, bytes]] | None:
        return None  # the API has no full-state listing; headers certify the state instead

    def close(self) -> None:
        pass


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        raise CorruptData(what, f"the {what} encoding is not base64") from None


# --- genesis ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ChainFacts:
    """What the audit needs from genesis."""

    chain_id: str
    genesis_hash: bytes
    genesis_time_ms: int
    validators: tuple[bytes, ...]
    pipeline_depth: int


def chain_facts(genesis: Any) -> ChainFacts:
    """``genesis`` is a ``node.genesis.Genesis``."""
    return ChainFacts(
        chain_id=genesis.chain_id,
        genesis_hash=genesis.genesis_hash,
        genesis_time_ms=genesis.genesis_time_ms,
        validators=tuple(genesis.validator_keys),
        pipeline_depth=genesis.consensus.pipeline_depth,
    )


def load_genesis(client: Any = None, path: str | Path | None = None) -> Any:
    """The genesis from a local file (trusted) or, without one, from the node's /genesis."""
    from node.genesis import Genesis

    if path is not None:
        return Genesis.load(path)
    if client is None:
        raise AuditError("no_genesis", "no genesis file and no node to ask")
    from client.api import ClientError

    try:
        document = client.genesis()
    except ClientError as exc:
        raise AuditError(exc.code, str(exc)) from None
    return Genesis.from_plain(document)


def genesis_facts(client: Any = None, path: str | Path | None = None) -> ChainFacts:
    return chain_facts(load_genesis(client, path))


# --- re-execution -------------------------------------------------------------------------

class Reexecution:
    """The application over a fresh in-memory store, executing blocks as a node does."""

    def __init__(self, genesis: Any) -> None:
        from node.apps import make_application
        from node.storage import MemoryStore

        self.store = MemoryStore()
        # As NodeCore does at its first start: the application writes its genesis state in
        # its constructor; commit() gives the genesis root and take_writes() the entries.
        self.app = make_application(genesis, self.store)
        self.genesis_app_hash = self.app.commit()
        self._write(self.app.take_writes())
        self.genesis_results_hash = merkle.EMPTY_ROOT

    def _write(self, writes: Sequence[tuple[bytes, bytes | None]]) -> None:
        with self.store.batch() as batch:
            for key, value in writes:
                if value is None:
                    batch.delete_state(key)
                else:
                    batch.put_state(key, value)

    def execute(self, block: Block) -> tuple[bytes, bytes, list[Receipt]]:
        """Execute, commit and persist one block exactly as ``NodeCore._execute`` does."""
        receipts = self.app.execute_block(block.header, block.txs)
        app_hash = self.app.commit()
        self._write(self.app.take_writes())
        return app_hash, results_hash(receipts), receipts

    def state_items(self) -> Iterator[tuple[bytes, bytes]]:
        return self.store.iterate_state()


# --- report -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Failure:
    height: int  # 0: not tied to one block (genesis, sources disagreeing on genesis)
    check: str  # hash_link, certificate, tx_signature, tx_root, app_hash, results_hash, ...
    message: str
    source: str

    def to_json(self) -> dict:
        return {"height": self.height, "check": self.check, "message": self.message,
                "source": self.source}

    def __str__(self) -> str:
        where = f"height {self.height}" if self.height else "genesis"
        return f"{where}: {self.check}: {self.message} [{self.source}]"


@dataclass(slots=True)
class AuditReport:
    chain_id: str
    sources: list[str]
    genesis_hash: bytes
    latest_height: int = 0
    heights_verified: int = 0
    transactions: int = 0
    certificate_signatures: int = 0
    certified_height: int = 0  # the last height whose resulting state a header certifies
    app_hash: bytes = b""  # re-executed state root after the last verified block
    checks: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    conservation: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def first_failure(self) -> Failure | None:
        return self.failures[0] if self.failures else None

    def count(self, check: str, amount: int = 1) -> None:
        self.checks[check] = self.checks.get(check, 0) + amount

    def to_json(self) -> dict:
        first = self.first_failure
        return {
            "ok": self.ok,
            "chain_id": self.chain_id,
            "genesis_hash": self.genesis_hash.hex(),
            "sources": self.sources,
            "latest_height": self.latest_height,
            "heights_verified": self.heights_verified,
            "certified_height": self.certified_height,
            "transactions": self.transactions,
            "certificate_signatures": self.certificate_signatures,
            "app_hash": self.app_hash.hex(),
            "checks": dict(sorted(self.checks.items())),
            "first_bad_height": first.height if first else None,
            "failures": [failure.to_json() for failure in self.failures],
            "conservation": self.conservation,
        }


# --- the audit ----------------------------------------------------------------------------

@dataclass(slots=True)
class _Fetched:
    raw: bytes | None
    certificate: bytes | None
    receipts: list[Receipt] | None
    error: str | None = None  # could not read at all: the audit cannot go on (exit 1)
    corrupt: CorruptData | None = None  # read, but does not decode: a finding (exit 2)


def _fetch(source: ChainSource, height: int, want_receipts: bool) -> _Fetched:
    try:
        raw, certificate, receipts = source.fetch(height, want_receipts)
        return _Fetched(raw, certificate, receipts)
    except CorruptData as exc:
        return _Fetched(None, None, None, corrupt=exc)
    except HuzhuError as exc:
        return _Fetched(None, None, None, f"{exc.code}: {exc.message}")


class _Prefetcher:
    """Fetches heights ahead of the verifier (remote sources answer one block per request)."""

    def __init__(self, sources: Sequence[ChainSource], heights: Sequence[int],
                 threads: int) -> None:
        self.sources = sources
        self.pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
        self.heights = heights

    def __iter__(self) -> Iterator[tuple[int, list[_Fetched]]]:
        if self.pool is None:
            for height in self.heights:
                yield height, [_fetch(s, height, True) for s in self.sources]
            return
        pending: list[tuple[int, list[Any]]] = []
        iterator = iter(self.heights)
        try:
            for height in iterator:
                pending.append((height, [self.pool.submit(_fetch, s, height, True)
                                         for s in self.sources]))
                if len(pending) >= PREFETCH_BLOCKS:
                    done_height, futures = pending.pop(0)
                    yield done_height, [future.result() for future in futures]
            while pending:
                done_height, futures = pending.pop(0)
                yield done_height, [future.result() for future in futures]
        finally:
            for _, futures in pending:
                for future in futures:
                    future.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)


class Auditor:
    def __init__(self, genesis: Any, sources: Sequence[ChainSource],
                 fetch_threads: int = 1) -> None:
        if not sources:
            raise AuditError("no_source", "nothing to audit: give at least one node or home")
        self.genesis = genesis
        self.facts = chain_facts(genesis)
        self.sources = list(sources)
        self.is_plan = isinstance(genesis.app, dict) and genesis.app.get("name") == "plan"
        self.fetch_threads = fetch_threads
        self.report = AuditReport(self.facts.chain_id, [s.name for s in self.sources],
                                  self.facts.genesis_hash)

    def _fail(self, height: int, check: str, message: str, source: ChainSource) -> None:
        self.report.failures.append(Failure(height, check, message, source.name))

    def run(self, on_start: Callable[[int], None] | None = None,
            on_height: Callable[[int], None] | None = None) -> AuditReport:
        report = self.report
        facts = self.facts
        primary = self.sources[0]
        try:
            latest = [source.latest_height() for source in self.sources]
        except HuzhuError as exc:
            raise AuditError(exc.code, exc.message) from None
        target = latest[0]
        report.latest_height = target
        if on_start:
            on_start(target)

        execution = Reexecution(self.genesis)
        executed: dict[int, tuple[bytes, bytes]] = {0: (execution.genesis_app_hash,
                                                        execution.genesis_results_hash)}
        depth = facts.pipeline_depth
        previous: BlockHeader | None = None
        prefetch = _Prefetcher(self.sources, range(1, target + 1), self.fetch_threads)
        for height, fetched in prefetch:
            block = self._verify_block(height, fetched[0], primary, previous)
            if block is None:
                break
            for index, source in enumerate(self.sources[1:], start=1):
                if height <= latest[index]:
                    self._verify_agreement(height, block, fetched[index], source)
            if report.failures:
                break
            app_hash, results, receipts = execution.execute(block)
            executed[height] = (app_hash, results)
            executed.pop(height - depth - 1, None)  # keep only what later headers refer to
            report.count("reexecuted")
            self._verify_execution_hashes(height, block.header, executed, primary)
            for index, source in enumerate(self.sources):
                if height <= latest[index] and (fetched[index].receipts is not None
                                                or source.stores_receipts):
                    self._verify_receipts(height, receipts, fetched[index].receipts, source)
            if self.is_plan:
                self._verify_totals(height, execution.app, primary)
            if report.failures:
                break
            report.heights_verified = height
            report.transactions += len(block.txs)
            report.app_hash = app_hash
            report.certified_height = max(0, height - depth)
            previous = block.header
            if on_height:
                on_height(height)

        if not report.failures:
            if target == 0:
                report.app_hash = execution.genesis_app_hash
            for index, source in enumerate(self.sources):
                # A source's state is the state after its own last block; compare those
                # that stopped where the audit did.
                if latest[index] == target and not report.failures:
                    self._verify_state(source, execution, target)
        if not report.failures:
            self._verify_indexes(latest)
        if not report.failures and self.is_plan:
            self._verify_settlements(execution.app, target, primary)
        return report

    def _verify_indexes(self, latest: list[int]) -> None:
        for index, source in enumerate(self.sources):
            findings = getattr(source, "tx_index_findings", None)
            if findings is None:
                continue
            try:
                for height, check, message in findings(latest[index]):
                    self._fail(height, check, message, source)
                    return
            except HuzhuError as exc:  # CorruptData, or StoreError("corrupt") from the scan
                if not isinstance(exc, CorruptData) and exc.code != "corrupt":
                    raise
                self._fail(latest[index], "tx_index", exc.message, source)
                return
            self.report.count("tx_index")

    # per-height checks -----------------------------------------------------------------

    def _verify_block(self, height: int, fetched: _Fetched, source: ChainSource,
                      previous: BlockHeader | None) -> Block | None:
        facts = self.facts
        report = self.report
        if fetched.error:
            raise AuditError("fetch_failed", f"{source.name}: height {height}: {fetched.error}")
        if fetched.corrupt:
            self._fail(height, fetched.corrupt.code, fetched.corrupt.message, source)
            return None
        if fetched.raw is None:
            self._fail(height, "missing_block", "the block is missing", source)
            return None
        try:
            block = Block.decode(fetched.raw)
        except InvalidBlock as exc:
            self._fail(height, "block_encoding", f"the block does not decode: {exc.message}", source)
            return None
        header = block.header
        if header.height != height:
            self._fail(height, "height", f"block stored at {height} says height {header.height}",
                       source)
        if header.chain_id != facts.chain_id:
            self._fail(height, "chain_id", f"block is for chain {header.chain_id!r}", source)
        expected_prev = facts.genesis_hash if previous is None else previous.block_hash
        if header.prev_hash != expected_prev:
            what = "the genesis hash" if previous is None else f"the hash of block {height - 1}"
            self._fail(height, "hash_link", f"prev_hash {header.prev_hash.hex()[:16]}… is not "
                       f"{what} {expected_prev.hex()[:16]}…", source)
        report.count("hash_link")
        if previous is not None and header.timestamp_ms < previous.timestamp_ms:
            self._fail(height, "timestamp", "block time goes backwards", source)
        if header.proposer >= len(facts.validators):
            self._fail(height, "proposer", f"proposer {header.proposer} is not a validator",
                       source)
        self._verify_certificate(height, block, fetched.certificate, source)
        try:
            block.validate_structure()
            report.count("tx_root")
        except InvalidBlock as exc:
            check = "tx_root" if exc.code in ("tx_root", "tx_count") else "block_structure"
            self._fail(height, check, exc.message, source)
        for index, tx in enumerate(block.txs):
            if not tx.verify_signature():
                self._fail(height, "tx_signature",
                           f"transaction {index} ({tx.tx_id.hex()[:16]}…, {tx.kind}) has an "
                           "invalid signature", source)
                break
        report.count("tx_signature", len(block.txs))
        return None if report.failures else block

    def _verify_certificate(self, height: int, block: Block, raw: bytes | None,
                            source: ChainSource) -> None:
        if raw is None:
            self._fail(height, "certificate", "no commit certificate", source)
            return
        try:
            certificate = CommitCertificate.decode(raw)
        except InvalidCertificate as exc:
            self._fail(height, "certificate", f"certificate does not decode: {exc.message}",
                       source)
            return
        if certificate.height != height:
            self._fail(height, "certificate", f"certificate is for height {certificate.height}",
                       source)
            return
        if certificate.block_hash != block.block_hash:
            self._fail(height, "certificate", "certificate is for a different block hash "
                       "(the block was changed after it was certified)", source)
            return
        try:
            certificate.verify(self.facts.chain_id, self.facts.validators)
        except InvalidCertificate as exc:
            self._fail(height, "certificate", f"{exc.code}: {exc.message}", source)
            return
        self.report.count("certificate")
        self.report.certificate_signatures += len(certificate.signatures)

    def _verify_agreement(self, height: int, block: Block, fetched: _Fetched,
                          source: ChainSource) -> None:
        if fetched.error:
            raise AuditError("fetch_failed", f"{source.name}: height {height}: {fetched.error}")
        if fetched.corrupt:
            self._fail(height, fetched.corrupt.code, fetched.corrupt.message, source)
            return
        if fetched.raw is None:
            self._fail(height, "agreement", "the block is missing on this node", source)
            return
        if fetched.raw != block.encode():
            self._fail(height, "agreement", "this node holds a different block at this height",
                       source)
            return
        self._verify_certificate(height, block, fetched.certificate, source)
        self.report.count("agreement")

    def _verify_execution_hashes(self, height: int, header: BlockHeader,
                                 executed: dict[int, tuple[bytes, bytes]],
                                 source: ChainSource) -> None:
        """Header h certifies the state after h - K; compare with our re-execution."""
        state_height = max(0, height - self.facts.pipeline_depth)
        app_hash, results = executed[state_height]
        after = "genesis" if state_height == 0 else f"block {state_height}"
        if header.app_hash != app_hash:
            self._fail(height, "app_hash", f"header app_hash {header.app_hash.hex()[:16]}… "
                       f"differs from the re-executed state after {after} "
                       f"{app_hash.hex()[:16]}…", source)
        if header.results_hash != results:
            self._fail(height, "results_hash", f"header results_hash differs from the "
                       f"re-executed receipts of {after}", source)
        self.report.count("app_hash")

    def _verify_receipts(self, height: int, executed: list[Receipt],
                         stored: list[Receipt] | None, source: ChainSource) -> None:
        if stored is None:
            self._fail(height, "receipts", "the stored receipts are missing", source)
            return
        if len(executed) != len(stored):
            self._fail(height, "receipts", f"{len(stored)} stored receipts, "
                       f"{len(executed)} re-executed", source)
            return
        for index, (mine, theirs) in enumerate(zip(executed, stored)):
            if mine != theirs:
                self._fail(height, "receipts", f"stored receipt {index} differs from the "
                           f"re-executed one ({theirs.code} vs {mine.code})", source)
                return
        self.report.count("receipts")

    # whole-chain checks ----------------------------------------------------------------

    def _verify_state(self, source: ChainSource, execution: Reexecution, height: int) -> None:
        stored = source.state_items()
        if stored is None:
            return
        mine = execution.state_items()
        diffs: list[str] = []
        left = next(mine, None)
        right = next(stored, None)
        compared = 0
        while (left is not None or right is not None) and len(diffs) < MAX_STATE_DIFFS_REPORTED:
            if right is None or (left is not None and left[0] < right[0]):
                diffs.append(f"key {left[0].hex()} is missing from the stored state")
                left = next(mine, None)
            elif left is None or right[0] < left[0]:
                diffs.append(f"stored key {right[0].hex()} does not exist after re-execution")
                right = next(stored, None)
            else:
                if left[1] != right[1]:
                    diffs.append(f"stored value of key {left[0].hex()} differs from the "
                                 "re-executed state")
                compared += 1
                left = next(mine, None)
                right = next(stored, None)
        if diffs:
            after = f"after block {height}" if height else "at genesis"
            self._fail(height, "state", f"{diffs[0]} ({after}; {len(diffs)}"
                       f"{'+' if len(diffs) >= MAX_STATE_DIFFS_REPORTED else ''} differences)",
                       source)
            return
        self.report.count("state_keys", compared)

    def _verify_totals(self, height: int, app: Any, source: ChainSource) -> None:
        """Conservation after every block: debited from members + carry = booked + fees, and
        booked = credited + awaiting payment."""
        totals, _ = app.query("plan/totals")
        debited, carry = totals["shares_charged_fen"], totals["carry_fen"]
        paid, fees = totals["payouts_fen"], totals["fees_fen"]
        if debited + carry != paid + fees:
            self._fail(height, "conservation", f"debited {debited} + carry {carry} != paid out "
                       f"{paid} + fees {fees} fen after this block", source)
            return
        credited = totals["paid_net_fen"] + totals["arrears_recovered_fen"]
        unpaid = totals["payouts_unpaid_fen"]
        if paid != credited + unpaid:
            self._fail(height, "conservation", f"booked {paid} != credited {credited} + "
                       f"awaiting payment {unpaid} fen after this block", source)
            return
        self.report.count("conservation")

    def _verify_settlements(self, app: Any, height: int, source: ChainSource) -> None:
        """Each published settlement's arithmetic (DOMAIN.md), and the carry chain."""
        from ledger.application import QueryError

        totals, _ = app.query("plan/totals")
        carry = 0
        for period in range(1, totals["next_period"]):
            try:
                settlement, _ = app.query(f"settlement/{period}")
            except QueryError:
                self._fail(height, "conservation", f"settlement {period} is missing", source)
                return
            payouts, fee = settlement["payouts_fen"], settlement["fee_fen"]
            total, members = settlement["total_fen"], settlement["members"]
            share, carry_out = settlement["share_fen"], settlement["carry_fen"]
            problems = []
            if settlement["carry_in_fen"] != carry:
                problems.append(f"carry in {settlement['carry_in_fen']} is not the previous "
                                f"carry {carry}")
            if total != payouts + fee + settlement["carry_in_fen"]:
                problems.append("total != payouts + fee + carry in")
            if share * members + carry_out != total:
                problems.append("share x members + carry != total")
            self.report.conservation.append({
                "period": period, "payouts_fen": payouts, "fee_fen": fee, "members": members,
                "share_fen": share, "carry_fen": carry_out, "ok": not problems})
            if problems:
                self._fail(height, "conservation", f"settlement {period}: {'; '.join(problems)}",
                           source)
                return
            carry = carry_out
        self.report.count("settlements", totals["next_period"] - 1)


def open_home_source(home: str | Path) -> tuple[Any, StoreSource]:
    """(genesis, source) for a node home directory, reading its LevelDB directly."""
    from node.config import load_config
    from node.genesis import Genesis
    from node.storage import LevelDBStore

    config = load_config(home)
    genesis = Genesis.load(config.paths.genesis)
    data_dir = config.paths.data_dir
    if not Path(data_dir).exists():
        raise AuditError("no_store", f"{data_dir} does not exist (has the node ever started?)")
    from node.storage import StoreError

    try:
        store = LevelDBStore(data_dir, create_if_missing=False)
    except StoreError as exc:
        if exc.code == "locked":
            raise AuditError("store_in_use", f"{data_dir} is in use: stop the node (huzhu "
                             "consortium down) or audit a copy, or audit it with --node URL") from None
        raise
    return genesis, StoreSource(store, name=str(home))
