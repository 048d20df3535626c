"""Consortium PKI and mutual-TLS contexts for the peer transport.

`huzhu testnet` creates one consortium CA (an Ed25519 key and a self-signed certificate) and
issues each node an X.509 certificate for the node's own Ed25519 key, the same key that signs
its consensus messages and is listed in genesis. TLS 1.3 with CERT_REQUIRED on both sides and
the CA as the only trust anchor refuses anybody without a CA-issued certificate; after the
handshake the transport compares the certificate's public key with the genesis key of the node
the peer claims to be (``peer_public_key``), which refuses a CA-issued certificate for any
other key. Host names are not checked: identity is the key, not the address.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledger.errors import HuzhuError
from ledger.keys import KEY_FILE_MODE, KeyPair

CERT_VALIDITY_DAYS = 3650
# Certificates start an hour in the past so a peer whose clock is a little behind accepts them.
CERT_BACKDATE_S = 3600
CA_COMMON_NAME = "huzhu consortium CA"


class TLSConfigError(HuzhuError):
    default_code = "bad_tls"


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    key: ed25519.Ed25519PrivateKey
    certificate: x509.Certificate


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _validity(now: datetime.datetime | None) -> tuple[datetime.datetime, datetime.datetime]:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(seconds=CERT_BACKDATE_S)
    return start, now + datetime.timedelta(days=CERT_VALIDITY_DAYS)


def make_ca(common_name: str = CA_COMMON_NAME,
            now: datetime.datetime | None = None) -> CertificateAuthority:
    key = ed25519.Ed25519PrivateKey.generate()
    start, end = _validity(now)
    name = _name(common_name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False),
            critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, None)  # Ed25519 signs without a separate digest
    )
    return CertificateAuthority(key, certificate)


def issue_certificate(ca: CertificateAuthority, public_key: bytes, common_name: str,
                      organization: str | None = None, hosts: tuple[str, ...] = ("127.0.0.1",),
                      now: datetime.datetime | None = None) -> x509.Certificate:
    """A certificate for the raw Ed25519 ``public_key``, usable as TLS server and client."""
    subject_key = ed25519.Ed25519PublicKey.from_public_bytes(public_key)
    start, end = _validity(now)
    alt_names: list[x509.GeneralName] = [x509.DNSName(common_name)]
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca.certificate.subject)
        .public_key(subject_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False),
            critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca.key.public_key()), critical=False)
        .sign(ca.key, None)
    )


# --- PEM files ----------------------------------------------------------------------------

def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def private_key_pem(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def node_private_key(key: KeyPair) -> ed25519.Ed25519PrivateKey:
    """The node's ledger key as a cryptography key (same seed, same public key)."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(key.seed)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=KEY_FILE_MODE, exist_ok=True)
    path.chmod(KEY_FILE_MODE)
    path.write_bytes(data)


def save_ca(ca: CertificateAuthority, cert_path: Path, key_path: Path) -> None:
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(certificate_pem(ca.certificate))
    write_private(key_path, private_key_pem(ca.key))


def load_ca(cert_path: Path, key_path: Path) -> CertificateAuthority:
    certificate = load_certificate(cert_path)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise TLSConfigError("bad_ca_key", f"{key_path} is not an Ed25519 key")
    return CertificateAuthority(key, certificate)


def load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except FileNotFoundError:
        raise TLSConfigError("missing", f"certificate {path} does not exist") from None
    except ValueError as exc:
        raise TLSConfigError("malformed", f"{path} is not a PEM certificate: {exc}") from None


def certificate_public_key(certificate: x509.Certificate) -> bytes | None:
    """The raw 32-byte Ed25519 key a certificate carries, or None for any other key type."""
    key = certificate.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        return None
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def check_node_files(cert_path: Path, tls_key_path: Path, ca_path: Path, key: KeyPair) -> None:
    """Refuse to start with TLS files that do not belong to this node's key."""
    certificate = load_certificate(cert_path)
    if certificate_public_key(certificate) != key.public_key:
        raise TLSConfigError("key_mismatch",
                             f"{cert_path} is not a certificate for this node's key")
    try:
        tls_key = serialization.load_pem_private_key(Path(tls_key_path).read_bytes(), None)
    except FileNotFoundError:
        raise TLSConfigError("missing", f"TLS key {tls_key_path} does not exist") from None
    except ValueError as exc:
        raise TLSConfigError("malformed", f"{tls_key_path}: {exc}") from None
    if not isinstance(tls_key, ed25519.Ed25519PrivateKey) or tls_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw) != key.public_key:
        raise TLSConfigError("key_mismatch", f"{tls_key_path} is not this node's key")
    load_certificate(ca_path)


# --- SSL contexts -------------------------------------------------------------------------

def _context(purpose: int, cert_path: Path, key_path: Path, ca_path: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(purpose)
    # Ed25519 certificates need TLS 1.3 (or 1.2 with RFC 8422); 1.3 only keeps it simple.
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = False  # identity is the certificate's key, checked after handshake
    # The consortium CA is the only trust anchor: no system store is loaded.
    context.load_verify_locations(cafile=str(ca_path))
    context.load_cert_chain(certfile=str(cert_path), keyfile=str(key_path))
    return context


def server_context(cert_path: Path, key_path: Path, ca_path: Path) -> ssl.SSLContext:
    return _context(ssl.PROTOCOL_TLS_SERVER, cert_path, key_path, ca_path)


def client_context(cert_path: Path, key_path: Path, ca_path: Path) -> ssl.SSLContext:
    return _context(ssl.PROTOCOL_TLS_CLIENT, cert_path, key_path, ca_path)


def peer_public_key(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> bytes | None:
    """The raw Ed25519 key of the verified peer certificate of a TLS connection, if any."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    return certificate_public_key(certificate)
