"""The aiohttp node runtime: one real node process around NodeCore.

NodeCore is the same synchronous object the simulator drives; this shell feeds it real time
and real sockets. Everything runs on one asyncio event loop: a tick task calls
``core.on_tick(now_ms)`` every ``tick_ms``, the peer transport calls ``core.on_message`` for
each frame, and the API calls ``core.submit_tx``. NodeCore writes to its LevelDB store
(synced: its own votes before it returns them, each commit as one batch) before it returns,
so all this shell does with its output is send the frames and announce commits. Calls into
NodeCore are short and never overlap, which is why no lock is needed.

Shutdown (SIGTERM, SIGINT): stop ticking, stop accepting API requests and peer frames,
close the peer connections, close the store. A kill -9 at any point leaves a store that the
next start restores from (NodeCore.start replays the WAL) and catches up from the peers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ledger.errors import HuzhuError
from ledger.hashing import sha256
from ledger.keys import KeyPair
from ledger.quorum import quorum_size
from node import tls
from node.api import Api, SubmitOutcome
from node.config import NodeConfig
from node.logging import get_logger, setup_logging
from node.metrics import NodeMetrics
from node.transport import PeerTransport

log = get_logger("huzhu.node")

SHUTDOWN_GRACE_S = 5.0


class StartupError(HuzhuError):
    default_code = "startup_failed"


class NodeFailed(HuzhuError):
    """NodeCore raised: the node stopped instead of running on in an unknown state."""

    default_code = "node_failed"


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class NodeRuntime:
    """One node: NodeCore + LevelDB store + peer transport + REST API on an event loop."""

    def __init__(self, config: NodeConfig, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        from node.genesis import Genesis

        self.config = config
        self.clock_ms = clock_ms
        self.genesis = Genesis.load(config.paths.genesis)
        self.genesis_text = config.paths.genesis.read_text()
        self.chain_id = self.genesis.chain_id
        self.key = KeyPair.load(config.paths.key)
        self.validator_keys = list(self.genesis.validator_keys)
        if not 0 <= config.node_id < len(self.validator_keys):
            raise StartupError("not_a_validator", f"node id {config.node_id} is not in genesis")
        if self.validator_keys[config.node_id] != self.key.public_key:
            raise StartupError("key_mismatch", f"{config.paths.key} is not the key genesis lists "
                                               f"for node {config.node_id}")
        tls.check_node_files(config.paths.tls_cert, config.paths.tls_key, config.paths.ca_cert,
                             self.key)
        self.quorum = quorum_size(len(self.validator_keys))
        self.store: Any = None
        self.app: Any = None
        self.core: Any = None
        self.transport: PeerTransport | None = None
        self._api_runner: web.AppRunner | None = None
        self._tick_task: asyncio.Task | None = None
        self._waiters: dict[bytes, list[asyncio.Future]] = {}
        self._subscribers: dict[int, asyncio.Queue] = {}
        self._next_subscriber = 0
        self._height = 0
        self._view = 0
        self._started = False
        self._closing = False
        self.stopped = asyncio.Event()
        # Set when NodeCore raised: a broken invariant stops the node (see ``_fatal``).
        self.fatal_error: BaseException | None = None
        self.fatal = asyncio.Event()
        self.counters = {"txs_submitted": 0, "txs_accepted": 0, "txs_refused": 0,
                         "blocks_committed": 0, "txs_committed": 0,
                         "frames_in": 0, "ticks": 0}
        is_plan = isinstance(self.genesis.app, dict) and self.genesis.app.get("name") == "plan"
        self.metrics = NodeMetrics(
            self.status, (lambda path: self.app.query(path, False)) if is_plan else None)

    # --- lifecycle --------------------------------------------------------------------------

    def log_context(self) -> dict:
        return {"node": self.config.node_id, "height": self._height, "view": self._view}

    async def start(self) -> None:
        from node.apps import make_application
        from node.core import NodeCore, NodeParams
        from node.storage import LevelDBStore

        config = self.config
        config.paths.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = LevelDBStore(config.paths.data_dir)
        try:
            params = NodeParams(mempool_max_txs=config.node.mempool_max_txs,
                                mempool_max_bytes=config.node.mempool_max_bytes)
            # NodeCore checks signatures once, at admission; the application does not again.
            # The metrics wrap it to time block execution.
            app = self.metrics.instrument(make_application(self.genesis, self.store,
                                                           verify_signatures=False))
            self.core = NodeCore(self.genesis, config.node_id, self.key, self.store, app=app,
                                 params=params)
            self.app = self.core.app
            out = self.core.start(self.clock_ms())
            self._refresh_position()
            log.info("node_restored", latest_height=self.store.latest_height())
            self.transport = PeerTransport(
                config.node_id, self.chain_id, self.validator_keys, config.peers, config.p2p,
                tls.server_context(config.paths.tls_cert, config.paths.tls_key,
                                   config.paths.ca_cert),
                tls.client_context(config.paths.tls_cert, config.paths.tls_key,
                                   config.paths.ca_cert),
                on_frame=self._on_frame)
            await self.transport.start()
            self._dispatch(out)
            api = Api(self, config.api.max_body_bytes, config.api.wait_commit_timeout_ms,
                      config.api.max_waiters)
            self._api_runner = web.AppRunner(api.application(), access_log=None,
                                             handle_signals=False)
            await self._api_runner.setup()
            await web.TCPSite(self._api_runner, config.api.host, config.api.port,
                              reuse_address=True).start()
        except OSError as exc:
            await self._close()
            raise StartupError("listen_failed", f"cannot listen: {exc}") from None
        except BaseException:
            await self._close()
            raise
        consensus_tick_ms = self.genesis.consensus.tick_ms
        if config.node.tick_ms != consensus_tick_ms:
            # The replica counts its timeouts in ticks of the genesis length; another local
            # tick length stretches or shrinks every timeout of this node.
            log.warning("tick_length_differs", config_tick_ms=config.node.tick_ms,
                        genesis_tick_ms=consensus_tick_ms)
        self._tick_task = asyncio.create_task(self._tick_loop(), name="tick")
        self._started = True
        log.info("node_started", p2p_port=config.p2p.port, api_port=config.api.port,
                 validators=len(self.validator_keys), chain_id=self.chain_id)

    async def stop(self) -> None:
        if self.stopped.is_set():
            return
        log.info("node_stopping")
        self._started = False
        self._closing = True
        if self._tick_task is not None:
            self._tick_task.cancel()
            try:
                await self._tick_task
            except asyncio.CancelledError:
                pass
        await self._close()
        log.info("node_stopped")
        self.stopped.set()

    async def _close(self) -> None:
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.cancel()
        self._waiters.clear()
        for queue in self._subscribers.values():
            _offer(queue, None)
        if self._api_runner is not None:
            await self._api_runner.cleanup()
            self._api_runner = None
        if self.transport is not None:
            await self.transport.stop()
            self.transport = None
        if self.store is not None:
            self.store.close()
            self.store = None

    # --- driving NodeCore -------------------------------------------------------------------

    def _fatal(self, exc: BaseException) -> None:
        """NodeCore raised. It never raises on bad input from peers or clients, so this is a
        broken invariant or a failing disk: stop the node rather than run on in an unknown
        state. The store holds everything needed to restart."""
        if self.fatal_error is None:
            self.fatal_error = exc
            log.critical("node_core_failed", error=f"{type(exc).__name__}: {exc}",
                         exc_info=exc)
        self._started = False
        self.fatal.set()

    def _core_call(self, method: Callable, *args: Any) -> Any:
        if self.fatal_error is not None:
            raise NodeFailed("node_failed", "the node stopped after an internal error")
        try:
            return method(*args)
        except Exception as exc:
            self._fatal(exc)
            raise

    async def _tick_loop(self) -> None:
        interval_s = self.config.node.tick_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            self.counters["ticks"] += 1
            try:
                self._dispatch(self._core_call(self.core.on_tick, self.clock_ms()))
            except Exception:
                return

    def _on_frame(self, sender: int, data: bytes) -> None:
        # Frames can arrive as soon as the transport listens, which is after NodeCore started.
        if self.core is None or self._closing or self.fatal_error is not None:
            return
        self.counters["frames_in"] += 1
        self.metrics.frame_in(data)
        try:
            out = self._core_call(self.core.on_message, sender, data)
        except Exception:
            return
        self._dispatch(out)

    def _dispatch(self, out: Any) -> None:
        transport = self.transport
        for destination, data in out.send:
            if destination is None:
                transport.broadcast(data)
                self.metrics.frame_out(data, len(transport.links))
            elif destination != self.config.node_id:
                transport.send(destination, data)
                self.metrics.frame_out(data, 1)
        if out.committed:
            self._refresh_position()
        for committed in out.committed:
            height, block_hash, tx_ids = committed.height, committed.block_hash, committed.tx_ids
            self.counters["blocks_committed"] += 1
            self.counters["txs_committed"] += len(tx_ids)
            self.metrics.block_committed(height, tx_ids)
            log.info("block_committed", committed=height, block=block_hash.hex()[:16],
                     txs=len(tx_ids))
            for index, tx_id in enumerate(tx_ids):
                for future in self._waiters.pop(tx_id, ()):
                    if not future.done():
                        future.set_result((height, index))
            self._publish({"type": "block", "height": height, "block_hash": block_hash.hex(),
                           "tx_ids": [tx_id.hex() for tx_id in tx_ids]})
        if not out.committed:
            self._refresh_position()
        self.metrics.observe_view(self._view)

    def _refresh_position(self) -> None:
        """Height and view for the log lines; cheap, because this runs after every frame
        and tick and ``core.status()`` builds a whole report."""
        height = self.core.committed_height
        soft = self.core.soft_state
        view = self._view if soft is None else soft.view
        self._height = height
        if view != self._view:
            log.info("view_changed", new_view=view, old_view=self._view)
            self._view = view

    def _publish(self, event: dict) -> None:
        for subscriber, queue in list(self._subscribers.items()):
            if not _offer(queue, event):
                # A subscriber that cannot keep up is cut off rather than buffered without
                # bound; it gets a None (close) in place of its oldest event.
                del self._subscribers[subscriber]
                while not queue.empty():
                    queue.get_nowait()
                _offer(queue, None)

    # --- the API's view of the node (node.api.NodeService) ------------------------------------

    def genesis_document(self) -> dict:
        return json.loads(self.genesis_text)

    def submit_tx(self, raw: bytes) -> SubmitOutcome:
        self.counters["txs_submitted"] += 1
        result, out = self._core_call(self.core.submit_tx, raw, self.clock_ms())
        self._dispatch(out)
        outcome = submit_outcome(result, raw)
        self.counters["txs_accepted" if outcome.category == "accepted" else "txs_refused"] += 1
        self.metrics.tx_submitted(outcome.category, outcome.tx_id)
        return outcome

    async def wait_for_commit(self, tx_id: bytes, timeout_s: float) -> tuple[int, int] | None:
        location = self.store.get_tx_location(tx_id)
        if location is not None:
            return location
        future = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tx_id, []).append(future)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            return None
        finally:
            futures = self._waiters.get(tx_id)
            if futures is not None:
                if future in futures:
                    futures.remove(future)
                if not futures:
                    del self._waiters[tx_id]

    def mempool_contains(self, tx_id: bytes) -> bool:
        return self.core.mempool_contains(tx_id)

    def query(self, path: str, prove: bool) -> tuple[Any, Any]:
        return self.app.query(path, prove)

    def committed_height(self) -> int:
        return self.store.latest_height()

    def status(self) -> dict:
        core_status = dict(self.core.status())
        height = self.store.latest_height()
        latest = self.store.get_block(height) if height else None
        peers = self.transport.stats() if self.transport else []
        ready, _, _ = self.readiness()
        return {
            "node_id": self.config.node_id,
            "name": self.config.name,
            "chain_id": self.chain_id,
            "height": height,
            "view": int(core_status.get("view", 0)),
            "primary": int(core_status.get("primary", 0)),
            "validators": len(self.validator_keys),
            "peers": peers,
            "peers_connected": sum(1 for peer in peers if peer["connected"]),
            "mempool_txs": int(core_status.get("mempool_txs", 0)),
            "ready": ready,
            "latest_block_hash": latest.block_hash.hex() if latest is not None else None,
            "core": _jsonable(core_status),
        }

    def readiness(self) -> tuple[bool, str, dict]:
        if not self._started or self.transport is None:
            return False, "starting", {}
        connected = len(self.transport.connected_peers())
        fields = {"height": self.store.latest_height(), "peers_connected": connected,
                  "quorum": self.quorum}
        if connected + 1 < self.quorum:
            return False, f"connected to {connected} peers; a quorum needs {self.quorum - 1}", \
                fields
        if self.core.store_corrupt():
            return False, "store_corrupt: run huzhu audit --home on this node", fields
        status = self.core.status()
        if status.get("syncing"):
            return False, "catching up with the peers", fields
        return True, "", fields

    def report_store_corrupt(self) -> None:
        self.core.record_store_corrupt()

    def subscribe(self, queue: asyncio.Queue) -> Callable[[], None]:
        subscriber = self._next_subscriber
        self._next_subscriber += 1
        self._subscribers[subscriber] = queue

        def unsubscribe() -> None:
            self._subscribers.pop(subscriber, None)
        return unsubscribe

    def metrics_text(self) -> bytes:
        return self.metrics.exposition()

def _offer(queue: asyncio.Queue, item: Any) -> bool:
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        return False
    return True


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def submit_outcome(result: Any, raw: bytes) -> SubmitOutcome:
    """NodeCore's admission result in the API's terms (the categories are the same)."""
    tx_id = result.tx_id if result.tx_id is not None else sha256(raw)
    return SubmitOutcome(result.category, result.code, result.message or result.code, tx_id)


async def serve(config: NodeConfig) -> None:
    """Run a node until SIGTERM or SIGINT."""
    runtime = NodeRuntime(config)
    setup_logging(config.log.format, config.log.level, runtime.log_context)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    await runtime.start()
    try:
        waits = [asyncio.create_task(stop_requested.wait()),
                 asyncio.create_task(runtime.fatal.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
    finally:
        log.info("shutdown_requested", fatal=runtime.fatal_error is not None)
        await asyncio.wait_for(runtime.stop(), SHUTDOWN_GRACE_S * 2)
    if runtime.fatal_error is not None:
        raise NodeFailed("node_failed", f"stopped after an internal error: "
                                          f"{type(runtime.fatal_error).__name__}: "
                                          f"{runtime.fatal_error}")


EVENT_LOOP_ENV = "HUZHU_EVENT_LOOP"  # "asyncio" forces the standard loop
PROFILE_ENV = "HUZHU_PROFILE"  # a path prefix: write cProfile stats to PREFIX.node<I>.prof


def event_loop_name() -> str:
    """"uvloop" when it is installed and ``HUZHU_EVENT_LOOP`` is not "asyncio", else
    "asyncio": the loop ``run_event_loop`` uses."""
    if os.environ.get(EVENT_LOOP_ENV) == "asyncio":
        return "asyncio"
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def run_event_loop(main: Any) -> Any:
    """Run ``main`` on uvloop when it is installed (less CPU per frame and request), else on
    the standard asyncio loop; ``HUZHU_EVENT_LOOP=asyncio`` forces the standard loop."""
    if event_loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def run_node(config: NodeConfig) -> None:
    setup_logging(config.log.format, config.log.level,
                  lambda: {"node": config.node_id})
    profile_prefix = os.environ.get(PROFILE_ENV)
    if not profile_prefix:
        run_event_loop(serve(config))
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        run_event_loop(serve(config))
    finally:
        profiler.disable()
        profiler.dump_stats(f"{profile_prefix}.node{config.node_id}.prof")
