"""Mutual TLS and the peer transport, in-process on 127.0.0.1.

Two or three PeerTransports with certificates from a real consortium CA exchange frames; a
certificate from another CA, a CA-issued certificate for a key that is not the claimed
node's, and a listener holding the wrong key are all refused; send queues stay bounded and
drop the oldest frames; a restarted peer is reconnected.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest

from ledger.keys import KeyPair
from node import tls
from node.config import P2PConfig, PeerConfig
from node.transport import CHAIN_HEADER, NODE_HEADER, P2P_PATH, PeerTransport

CHAIN = "huzhu-test"
WAIT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Pki:
    """A consortium CA and n node keys with their files in a directory."""

    def __init__(self, directory: Path, n: int) -> None:
        self.directory = directory
        self.ca = tls.make_ca()
        self.ca_path = directory / "ca.crt"
        tls.save_ca(self.ca, self.ca_path, directory / "ca.key")
        self.keys = [KeyPair.generate() for _ in range(n)]
        self.ports = [free_port() for _ in range(n)]
        for index, key in enumerate(self.keys):
            self.write_identity(f"node{index}", key, self.ca)

    def write_identity(self, name: str, key: KeyPair, ca: tls.CertificateAuthority,
                       cert_key: bytes | None = None) -> tuple[Path, Path]:
        cert_path = self.directory / f"{name}.crt"
        key_path = self.directory / f"{name}.key"
        certificate = tls.issue_certificate(ca, cert_key or key.public_key, name)
        cert_path.write_bytes(tls.certificate_pem(certificate))
        tls.write_private(key_path, tls.private_key_pem(tls.node_private_key(key)))
        return cert_path, key_path

    def contexts(self, name: str, ca_path: Path | None = None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        cert, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        ca_path = ca_path or self.ca_path
        return tls.server_context(cert, key, ca_path), tls.client_context(cert, key, ca_path)

    def transport(self, index: int, received: list, name: str | None = None,
                  queue_frames: int = 64) -> PeerTransport:
        server_ssl, client_ssl = self.contexts(name or f"node{index}")
        peers = tuple(PeerConfig(id=other, name=f"node{other}", host="127.0.0.1", port=port)
                      for other, port in enumerate(self.ports) if other != index)
        config = P2PConfig(host="127.0.0.1", port=self.ports[index],
                           send_queue_max_frames=queue_frames, reconnect_initial_ms=20,
                           reconnect_max_ms=200, handshake_timeout_ms=2000)
        return PeerTransport(index, CHAIN, [key.public_key for key in self.keys], peers, config,
                             server_ssl, client_ssl,
                             on_frame=lambda sender, data: received.append((sender, data)))


async def wait_until(predicate, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path, 3)


async def test_certificates_carry_the_node_keys(pki: Pki) -> None:
    for index, key in enumerate(pki.keys):
        certificate = tls.load_certificate(pki.directory / f"node{index}.crt")
        assert tls.certificate_public_key(certificate) == key.public_key
        assert certificate.issuer == pki.ca.certificate.subject
        tls.check_node_files(pki.directory / f"node{index}.crt",
                             pki.directory / f"node{index}.key", pki.ca_path, key)
    with pytest.raises(tls.TLSConfigError):
        tls.check_node_files(pki.directory / "node0.crt", pki.directory / "node0.key",
                             pki.ca_path, pki.keys[1])


async def test_three_nodes_connect_and_exchange_frames(pki: Pki) -> None:
    inboxes = [[], [], []]
    transports = [pki.transport(i, inboxes[i]) for i in range(3)]
    try:
        for transport in transports:
            await transport.start()
        await wait_until(lambda: all(len(t.connected_peers()) == 2 for t in transports),
                         "full mesh")
        transports[0].broadcast(b"from-0")
        transports[2].send(1, b"2-to-1")
        transports[1].send(0, b"1-to-0")
        await wait_until(lambda: len(inboxes[1]) == 2 and len(inboxes[2]) == 1
                         and len(inboxes[0]) == 1, "frames")
        assert sorted(inboxes[1]) == [(0, b"from-0"), (2, b"2-to-1")]
        assert inboxes[2] == [(0, b"from-0")]
        assert inboxes[0] == [(1, b"1-to-0")]
        # one connection per pair: node 0 dialled both, so each link connected exactly once
        assert [stat["connects"] for stat in transports[0].stats()] == [1, 1]
    finally:
        for transport in transports:
            await transport.stop()


async def _raw_dial(port: int, client_ssl: ssl.SSLContext, claimed: int) -> int:
    """Dial a transport by hand; the HTTP status of the upgrade, or raise on TLS refusal."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(
                    f"https://127.0.0.1:{port}{P2P_PATH}", ssl=client_ssl,
                    headers={NODE_HEADER: str(claimed), CHAIN_HEADER: CHAIN}) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def test_certificate_from_another_ca_is_refused_at_the_handshake(pki: Pki) -> None:
    # The real key of node 1, but certified by a CA the consortium does not trust.
    rogue_ca = tls.make_ca("rogue CA")
    pki.write_identity("rogue", pki.keys[1], rogue_ca)
    rogue_ca_path = pki.directory / "rogue-ca.crt"
    rogue_ca_path.write_bytes(tls.certificate_pem(rogue_ca.certificate))
    received: list = []
    server = pki.transport(0, received)
    await server.start()
    try:
        # Trusting the consortium CA for the server, presenting the rogue client certificate:
        _, client_ssl = pki.contexts("rogue", ca_path=pki.ca_path)
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            await _raw_dial(pki.ports[0], client_ssl, claimed=1)
        assert server.connected_peers() == []
        assert server.links[1].connects == 0
        assert received == []
    finally:
        await server.stop()


async def test_ca_certificate_for_a_wrong_key_is_refused(pki: Pki) -> None:
    # A certificate from the consortium CA, for a key that is not node 1's genesis key.
    stranger = KeyPair.generate()
    pki.write_identity("stranger", stranger, pki.ca)
    server = pki.transport(0, [])
    await server.start()
    try:
        _, client_ssl = pki.contexts("stranger")
        assert await _raw_dial(pki.ports[0], client_ssl, claimed=1) == 403
        assert server.links[1].refusals == 1
        # claiming to be a node that is not a validator at all
        assert await _raw_dial(pki.ports[0], client_ssl, claimed=7) == 403
        assert server.refused_unknown == 1
        # the genuine node 1 still gets in
        _, genuine_ssl = pki.contexts("node1")
        assert await _raw_dial(pki.ports[0], genuine_ssl, claimed=1) == 101
        assert server.connected_peers() == [] and server.links[1].connects == 1
    finally:
        await server.stop()


async def test_dialler_refuses_a_listener_with_the_wrong_key(pki: Pki) -> None:
    # Node 1's port is served by a CA-certified impostor that presents its own key.
    impostor_key = KeyPair.generate()
    pki.write_identity("impostor", impostor_key, pki.ca)
    dialler = pki.transport(0, [])
    impostor = pki.transport(1, [], name="impostor")
    # The impostor checks the dialler correctly; only its own certificate is wrong.
    await impostor.start()
    await dialler.start()
    try:
        await wait_until(lambda: dialler.links[1].refusals >= 2, "two refused dials")
        assert dialler.links[1].connects == 0
        assert 1 not in dialler.connected_peers()
    finally:
        await dialler.stop()
        await impostor.stop()


async def test_send_queue_is_bounded_and_drops_the_oldest(pki: Pki) -> None:
    inbox: list = []
    sender = pki.transport(0, [], queue_frames=4)
    await sender.start()
    try:
        for number in range(10):
            sender.send(1, b"frame-%d" % number)
        assert sender.stats()[0]["queued"] == 4
        assert sender.stats()[0]["frames_dropped"] == 6
        receiver = pki.transport(1, inbox)
        await receiver.start()
        try:
            await wait_until(lambda: len(inbox) == 4, "queued frames after connect")
            assert inbox == [(0, b"frame-%d" % number) for number in range(6, 10)]
        finally:
            await receiver.stop()
    finally:
        await sender.stop()


async def test_restarted_peer_is_reconnected(pki: Pki) -> None:
    inbox0: list = []
    inbox1: list = []
    node0 = pki.transport(0, inbox0)
    node1 = pki.transport(1, inbox1)
    await node0.start()
    await node1.start()
    try:
        await wait_until(lambda: node0.connected_peers() == [1], "first connection")
        await node1.stop()
        await wait_until(lambda: node0.connected_peers() == [], "disconnect noticed")
        node0.send(1, b"while-down")
        inbox1.clear()
        node1 = pki.transport(1, inbox1)
        await node1.start()
        await wait_until(lambda: inbox1 == [(0, b"while-down")], "frame after reconnect")
        node1.send(0, b"back")
        await wait_until(lambda: inbox0 == [(1, b"back")], "reverse direction")
        assert node0.links[1].connects == 2
    finally:
        await node0.stop()
        await node1.stop()


async def test_oversize_frame_closes_the_connection(pki: Pki) -> None:
    inbox: list = []
    node0 = pki.transport(0, [])
    node1 = pki.transport(1, inbox)
    node1.config = P2PConfig(host="127.0.0.1", port=pki.ports[1], max_frame_bytes=1024,
                             reconnect_initial_ms=20, reconnect_max_ms=200)
    await node1.start()
    await node0.start()
    try:
        await wait_until(lambda: node0.connected_peers() == [1], "connection")
        node0.send(1, b"x" * 4096)
        node0.send(1, b"small")
        # the oversize frame is never delivered; the link comes back and later frames flow
        await wait_until(lambda: (1, b"small") in inbox or node0.links[1].connects >= 2,
                         "reconnect after oversize frame")
        assert all(len(data) <= 1024 for _, data in inbox)
    finally:
        await node0.stop()
        await node1.stop()


async def test_dialler_refuses_a_listener_certified_by_another_ca(pki: Pki) -> None:
    # Node 1's port is served with node 1's real key, but certified by a foreign CA that
    # also trusts the dialler: the dialler's TLS handshake fails, so no frame ever flows.
    rogue_ca = tls.make_ca("rogue CA")
    pki.write_identity("foreign1", pki.keys[1], rogue_ca)
    rogue_ca_path = pki.directory / "rogue-ca.crt"
    # The impostor trusts both CAs, so only the dialler's check can refuse it.
    rogue_ca_path.write_bytes(tls.certificate_pem(rogue_ca.certificate)
                              + pki.ca_path.read_bytes())
    impostor_inbox: list = []
    impostor = pki.transport(1, impostor_inbox, name="foreign1")
    impostor.server_ssl, impostor.client_ssl = pki.contexts("foreign1", ca_path=rogue_ca_path)
    dialler = pki.transport(0, [])
    await impostor.start()
    await dialler.start()
    try:
        dialler.send(1, b"secret")
        await wait_until(lambda: dialler.links[1].dial_failures >= 2, "two failed dials")
        assert dialler.links[1].connects == 0 and impostor.links[0].connects == 0
        assert impostor_inbox == []
        assert dialler.stats()[0]["queued"] == 1  # still waiting for the genuine node 1
    finally:
        await dialler.stop()
        await impostor.stop()
