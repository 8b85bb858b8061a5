"""The requesting department's mTLS identity: a CA certificate, a client certificate and its key.

The node knows the department by the client certificate (article 34: identity authentication
before any exchange). Files are checked when they are read, so that a wrong path, a file of the
wrong kind or a certificate the node would refuse is reported here, naming the file and the fix,
rather than as an opaque TLS handshake failure (what is checked:
``client_sdk.connection.identity``).
Nothing read from the key file ever appears in a message or a ``repr``.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from client_sdk.connection.identity import check_client_certificate
from client_sdk.errors import CredentialsError

__all__ = ["Credentials"]

StrPath = str | os.PathLike[str]

_MAX_PEM_BYTES = 1 << 20  # a certificate bundle is a few kilobytes; refuse to slurp a wrong file


@dataclass(frozen=True)
class Credentials:
    """PEM bytes for one mTLS identity. Build it with :meth:`from_files`, which checks them.

    ``department`` is the department the certificate names, and ``ca_file`` and
    ``certificate_file`` where the PEM came from (for messages); all three are ``None`` when the
    object was built directly from bytes, unchecked. The private key is kept out of ``repr``.
    """

    root_certificates: bytes
    certificate_chain: bytes
    private_key: bytes = field(repr=False)
    department: str | None = None
    ca_file: str | None = None
    certificate_file: str | None = None

    @classmethod
    def from_files(
        cls,
        ca_cert: StrPath,
        client_cert: StrPath,
        client_key: StrPath,
        *,
        now: _dt.datetime | None = None,
    ) -> Credentials:
        """Read and check the three PEM files (the certificate's validity at ``now``, default
        the current time).

        Raises :class:`CredentialsError` naming the file when one is missing, unreadable, not PEM
        of the expected kind, encrypted (keys must be unencrypted PEM), or when the certificate
        is one the node would refuse: expired or not yet valid, not for client authentication,
        naming no department, not issued by the CA in ``ca_cert``, or not the key's.
        """
        ca_pem = _read(ca_cert, "CA certificate")
        cert_pem = _read(client_cert, "client certificate")
        key_pem = _read(client_key, "client key")
        ca_file, cert_file = os.fspath(ca_cert), os.fspath(client_cert)
        names = _Names.of_files(ca_file, cert_file, os.fspath(client_key))
        department = _check(ca_pem, cert_pem, key_pem, names, now)
        return cls(
            root_certificates=ca_pem,
            certificate_chain=cert_pem,
            private_key=key_pem,
            department=department,
            ca_file=ca_file,
            certificate_file=cert_file,
        )

    def check(self, now: _dt.datetime | None = None) -> str:
        """Check the certificate again at ``now`` (a long-running client's may have expired).

        Returns the department; raises :class:`CredentialsError` as :meth:`from_files` does.
        """
        names = (
            _Names.of_files(self.ca_file, self.certificate_file, "(in memory)")
            if self.ca_file and self.certificate_file
            else _IN_MEMORY
        )
        return _check(self.root_certificates, self.certificate_chain, self.private_key, names, now)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """The ``grpc.ssl_channel_credentials`` for a channel to the node."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )


@dataclass(frozen=True)
class _Names:
    """How messages name the three inputs."""

    ca: str
    certificate: str
    key: str

    @classmethod
    def of_files(cls, ca: str, certificate: str, key: str) -> _Names:
        return cls(
            f"CA certificate file {ca!r}",
            f"client certificate file {certificate!r}",
            f"client key file {key!r}",
        )


_IN_MEMORY = _Names("the CA certificate", "the client certificate", "the client key")


def _check(
    ca_pem: bytes, cert_pem: bytes, key_pem: bytes, names: _Names, now: _dt.datetime | None
) -> str:
    return check_client_certificate(
        _load_certificates(cert_pem, names.certificate),
        _load_certificates(ca_pem, names.ca),
        _load_private_key(key_pem, names.key),
        certificate_name=names.certificate,
        ca_name=names.ca,
        key_name=names.key,
        now=now or _dt.datetime.now(_dt.UTC),
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


def _load_certificates(data: bytes, name: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CredentialsError(f"{name} does not hold a PEM certificate") from None
    return certificates


def _load_private_key(data: bytes, name: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        # cryptography raises TypeError when the key is encrypted and no password was given.
        raise CredentialsError(f"{name} is encrypted; an unencrypted PEM key is required") from None
    except Exception:
        # Never chain the original error: its message could quote part of the key material.
        raise CredentialsError(f"{name} does not hold a PEM private key") from None
