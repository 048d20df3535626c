"""Peer transport: one WebSocket per pair of nodes, binary frames, mutual TLS.

Each pair of validators shares one connection, dialled by the node with the lower id and
accepted by the higher (``GET /p2p`` on the peer port). Frames are the opaque consensus
messages NodeCore produces (canonical msgpack); the transport never looks inside them.

Who is who: TLS 1.3 with client certificates required and the consortium CA as the only trust
anchor refuses anyone without a CA-issued certificate at the handshake. The dialler names
the node it claims to be in the ``X-Huzhu-Node`` header; the acceptor compares the key in the
dialler's certificate with that node's key in genesis and answers 403 on a mismatch, and the
dialler likewise checks that the acceptor's certificate carries the key of the node it meant
to reach. A new verified connection from a peer replaces an older one (the peer restarted).

Limits: a frame is at most ``max_frame_bytes`` (larger closes the connection, as the peer is
broken or hostile); each peer has a send queue of at most ``send_queue_max_frames`` frames
that also holds frames while the peer is disconnected. When it is full the OLDEST frame is
dropped and counted: consensus messages are superseded by newer ones (later heights, later
views), and a peer that missed some catches up by fetching certified blocks. Dialling retries
with exponential backoff and jitter from ``reconnect_initial_ms`` up to ``reconnect_max_ms``.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from ledger import codec
from node.config import P2PConfig, PeerConfig
from node.logging import get_logger
from node.tls import peer_public_key

P2P_PATH = "/p2p"
NODE_HEADER = "X-Huzhu-Node"
CHAIN_HEADER = "X-Huzhu-Chain"

log = get_logger("huzhu.transport")


@dataclass(slots=True)
class PeerLink:
    """Everything the transport keeps about one peer."""

    peer: PeerConfig
    queue: deque = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    ws: Any = None  # the live WebSocket (server or client side), None when disconnected
    frames_sent: int = 0
    frames_received: int = 0
    frames_dropped: int = 0  # dropped from a full send queue (oldest first)
    frames_rejected: int = 0  # received frames that were not binary
    connects: int = 0
    refusals: int = 0  # connections refused for this id: wrong key, wrong chain
    dial_failures: int = 0  # dials that did not connect (down, TLS refused, timed out)

    @property
    def connected(self) -> bool:
        return self.ws is not None and not self.ws.closed


class PeerTransport:
    def __init__(self, node_id: int, chain_id: str, validator_keys: list[bytes],
                 peers: tuple[PeerConfig, ...], config: P2PConfig,
                 server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext,
                 on_frame: Callable[[int, bytes], None],
                 on_connect: Callable[[int], None] | None = None) -> None:
        self.node_id = node_id
        self.chain_id = chain_id
        self.validator_keys = validator_keys
        self.config = config
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.on_frame = on_frame
        self.on_connect = on_connect
        self.links: dict[int, PeerLink] = {}
        for peer in peers:
            if peer.id == node_id or not 0 <= peer.id < len(validator_keys):
                raise ValueError(f"peer id {peer.id} is not another validator")
            self.links[peer.id] = PeerLink(peer)
        self.refused_unknown = 0  # connections refused before we knew which peer they were
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task] = []
        self._closing = False

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=self.config.max_frame_bytes)
        app.router.add_get(P2P_PATH, self._accept)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port,
                           ssl_context=self.server_ssl, reuse_address=True)
        await site.start()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None,
                                          sock_connect=self.config.handshake_timeout_ms / 1000))
        for peer_id in sorted(self.links):
            if peer_id > self.node_id:
                self._tasks.append(asyncio.create_task(self._dial_loop(self.links[peer_id]),
                                                       name=f"dial-{peer_id}"))

    async def stop(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        for link in self.links.values():
            if link.ws is not None and not link.ws.closed:
                await link.ws.close()
            link.wakeup.set()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- sending --------------------------------------------------------------------------

    def send(self, peer_id: int, frame: bytes) -> bool:
        """Queue ``frame`` for ``peer_id``; False when the peer is unknown."""
        link = self.links.get(peer_id)
        if link is None:
            return False
        if len(link.queue) >= self.config.send_queue_max_frames:
            link.queue.popleft()
            link.frames_dropped += 1
        link.queue.append(frame)
        link.wakeup.set()
        return True

    def broadcast(self, frame: bytes) -> None:
        for peer_id in self.links:
            self.send(peer_id, frame)

    # --- status ---------------------------------------------------------------------------

    def connected_peers(self) -> list[int]:
        return [peer_id for peer_id, link in sorted(self.links.items()) if link.connected]

    def stats(self) -> list[dict]:
        return [{"id": peer_id, "name": link.peer.name, "connected": link.connected,
                 "queued": len(link.queue), "frames_sent": link.frames_sent,
                 "frames_received": link.frames_received,
                 "frames_dropped": link.frames_dropped,
                 "frames_rejected": link.frames_rejected, "connects": link.connects,
                 "refusals": link.refusals, "dial_failures": link.dial_failures}
                for peer_id, link in sorted(self.links.items())]

    # --- accepting ------------------------------------------------------------------------

    def _refuse(self, status: int, code: str, message: str,
                link: PeerLink | None = None) -> web.Response:
        if link is None:
            self.refused_unknown += 1
        else:
            link.refusals += 1
        log.warning("peer_refused", reason=code, detail=message)
        return web.json_response({"error": {"code": code, "message": message}}, status=status)

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        claimed = request.headers.get(NODE_HEADER, "")
        claimed_id = codec.parse_decimal(claimed, 4)
        if claimed_id is None or claimed_id not in self.links:
            return self._refuse(403, "unknown_node", f"{claimed!r} is not a peer of this node")
        link = self.links[claimed_id]
        if request.headers.get(CHAIN_HEADER) != self.chain_id:
            return self._refuse(403, "wrong_chain", "peer is on another chain", link)
        key = peer_public_key(request.transport.get_extra_info("ssl_object")
                              if request.transport else None)
        if key != self.validator_keys[link.peer.id]:
            return self._refuse(403, "wrong_key", f"certificate key is not node {link.peer.id}'s "
                                                  "key in genesis", link)
        ws = web.WebSocketResponse(max_msg_size=self.config.max_frame_bytes,
                                   heartbeat=self.config.heartbeat_ms / 1000)
        await ws.prepare(request)
        await self._run_connection(link, ws)
        return ws

    # --- dialling -------------------------------------------------------------------------

    async def _dial_loop(self, link: PeerLink) -> None:
        delay_ms = self.config.reconnect_initial_ms
        url = f"https://{link.peer.host}:{link.peer.port}{P2P_PATH}"
        headers = {NODE_HEADER: str(self.node_id), CHAIN_HEADER: self.chain_id}
        while not self._closing:
            try:
                ws = await asyncio.wait_for(
                    self._session.ws_connect(url, ssl=self.client_ssl, headers=headers,
                                             max_msg_size=self.config.max_frame_bytes,
                                             heartbeat=self.config.heartbeat_ms / 1000),
                    timeout=self.config.handshake_timeout_ms / 1000)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
                link.dial_failures += 1
                log.debug("peer_dial_failed", peer=link.peer.id, error=type(exc).__name__)
            else:
                key = peer_public_key(ws.get_extra_info("ssl_object"))
                if key != self.validator_keys[link.peer.id]:
                    link.refusals += 1
                    log.warning("peer_refused", peer=link.peer.id, reason="wrong_key",
                                detail="the node answering is not the one in genesis")
                    await ws.close()
                else:
                    delay_ms = self.config.reconnect_initial_ms
                    await self._run_connection(link, ws)
            if self._closing:
                return
            # Full jitter keeps restarted nodes from redialling in lockstep.
            await asyncio.sleep(random.uniform(delay_ms / 2, delay_ms) / 1000)
            delay_ms = min(delay_ms * 2, self.config.reconnect_max_ms)

    # --- one live connection --------------------------------------------------------------

    async def _run_connection(self, link: PeerLink, ws: Any) -> None:
        old = link.ws
        link.ws = ws
        link.connects += 1
        if old is not None and not old.closed:
            await old.close()  # the peer reconnected: its new connection wins
        log.info("peer_connected", peer=link.peer.id)
        sender = asyncio.create_task(self._send_loop(link, ws), name=f"send-{link.peer.id}")
        if self.on_connect is not None:
            self.on_connect(link.peer.id)
        try:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY:
                    link.frames_received += 1
                    self.on_frame(link.peer.id, message.data)
                    # Reading buffered frames does not suspend: yield after each so one busy
                    # peer cannot hold the loop while ticks, API requests and /events wait.
                    await asyncio.sleep(0)
                elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
                else:
                    link.frames_rejected += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken connection is the peer's problem, not ours
            log.info("peer_connection_error", peer=link.peer.id, error=type(exc).__name__)
        finally:
            sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, Exception):
                pass
            if link.ws is ws:
                link.ws = None
                log.info("peer_disconnected", peer=link.peer.id)
            if not ws.closed:
                await ws.close()

    async def _send_loop(self, link: PeerLink, ws: Any) -> None:
        while not ws.closed:
            if not link.queue:
                link.wakeup.clear()
                await link.wakeup.wait()
                continue
            frame = link.queue.popleft()
            try:
                await ws.send_bytes(frame)
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                # Keep the frame for the next connection unless newer frames filled its place.
                if len(link.queue) < self.config.send_queue_max_frames:
                    link.queue.appendleft(frame)
                return
            link.frames_sent += 1
