"""The requesting department's mTLS identity: a CA certificate, a client certificate and its key.

The node knows the department by the client certificate (article 34: identity authentication
before any exchange). Files are checked when they are read, so that a wrong path or a file of the
wrong kind is reported here, naming the file, rather than as an opaque TLS handshake failure.
Nothing read from the key file ever appears in a message or a ``repr``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
    PublicKeyTypes,
)

from client_sdk.errors import CredentialsError

__all__ = ["Credentials"]

StrPath = str | os.PathLike[str]

_MAX_PEM_BYTES = 1 << 20  # a certificate bundle is a few kilobytes; refuse to slurp a wrong file


@dataclass(frozen=True)
class Credentials:
    """PEM bytes for one mTLS identity. Build it with :meth:`from_files`.

    The private key is kept out of ``repr`` and ``str``.
    """

    root_certificates: bytes
    certificate_chain: bytes
    private_key: bytes = field(repr=False)

    @classmethod
    def from_files(cls, ca_cert: StrPath, client_cert: StrPath, client_key: StrPath) -> Credentials:
        """Read and check the three PEM files.

        Raises :class:`CredentialsError` naming the file when one is missing, unreadable, not PEM
        of the expected kind, encrypted (keys must be unencrypted PEM), or when the key does not
        belong to the client certificate.
        """
        ca_pem = _read(ca_cert, "CA certificate")
        cert_pem = _read(client_cert, "client certificate")
        key_pem = _read(client_key, "client key")
        _load_certificates(ca_pem, ca_cert, "CA certificate")
        certificate = _load_certificates(cert_pem, client_cert, "client certificate")[0]
        private_key = _load_private_key(key_pem, client_key)
        if _public_bytes(private_key.public_key()) != _public_bytes(certificate.public_key()):
            raise CredentialsError(
                f"client key {os.fspath(client_key)!r} does not belong to client certificate "
                f"{os.fspath(client_cert)!r}"
            )
        return cls(root_certificates=ca_pem, certificate_chain=cert_pem, private_key=key_pem)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """The ``grpc.ssl_channel_credentials`` for a channel to the node."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )


def _read(path: StrPath, what: str) -> bytes:
    name = os.fspath(path)
    p = Path(name)
    try:
        if not p.exists():
            raise CredentialsError(f"{what} file {name!r} does not exist")
        if not p.is_file():
            raise CredentialsError(f"{what} path {name!r} is not a file")
        if p.stat().st_size > _MAX_PEM_BYTES:
            raise CredentialsError(f"{what} file {name!r} is too large to be a PEM file")
        data = p.read_bytes()
    except OSError as exc:
        # strerror only ("Permission denied"): never the content.
        raise CredentialsError(
            f"cannot read {what} file {name!r}: {exc.strerror or type(exc).__name__}"
        ) from None
    if not data.strip():
        raise CredentialsError(f"{what} file {name!r} is empty")
    return data


def _load_certificates(data: bytes, path: StrPath, what: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CredentialsError(
            f"{what} file {os.fspath(path)!r} does not hold a PEM certificate"
        ) from None
    return certificates


def _load_private_key(data: bytes, path: StrPath) -> PrivateKeyTypes:
    name = os.fspath(path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        # cryptography raises TypeError when the key is encrypted and no password was given.
        raise CredentialsError(
            f"client key file {name!r} is encrypted; an unencrypted PEM key is required"
        ) from None
    except Exception:
        # Never chain the original error: its message could quote part of the key material.
        raise CredentialsError(
            f"client key file {name!r} does not hold a PEM private key"
        ) from None


def _public_bytes(key: PublicKeyTypes | CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
