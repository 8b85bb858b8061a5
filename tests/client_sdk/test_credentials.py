"""Credentials.from_files: clear errors naming the file, never the key's contents."""

from __future__ import annotations

import datetime
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from client_sdk.credentials import Credentials
from client_sdk.errors import CredentialsError


def _certificate(key: ec.EllipticCurvePrivateKey, name: str) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    other_key = ec.generate_private_key(ec.SECP256R1())
    files = {
        "ca": (tmp_path / "ca.pem", _certificate(ca_key, "test CA")),
        "cert": (tmp_path / "client.pem", _certificate(client_key, "civil-affairs")),
        "key": (tmp_path / "client.key", _key_pem(client_key)),
        "other_key": (tmp_path / "other.key", _key_pem(other_key)),
        "encrypted_key": (tmp_path / "enc.key", _key_pem(client_key, b"secret")),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {name: path for name, (path, _) in files.items()}


def test_reads_three_pem_files(pki: dict[str, Path]) -> None:
    credentials = Credentials.from_files(pki["ca"], pki["cert"], str(pki["key"]))
    assert credentials.root_certificates == pki["ca"].read_bytes()
    assert credentials.certificate_chain == pki["cert"].read_bytes()
    assert isinstance(credentials.channel_credentials(), grpc.ChannelCredentials)


def test_private_key_is_not_in_repr(pki: dict[str, Path]) -> None:
    credentials = Credentials.from_files(pki["ca"], pki["cert"], pki["key"])
    assert "PRIVATE" not in repr(credentials)
    assert "private_key" not in repr(credentials)


@pytest.mark.parametrize(
    ("which", "words"),
    [("ca", "CA certificate file"), ("cert", "client certificate file"), ("key", "client key")],
)
def test_missing_file_is_named(pki: dict[str, Path], which: str, words: str) -> None:
    paths = {"ca": pki["ca"], "cert": pki["cert"], "key": pki["key"]}
    paths[which] = pki["ca"].parent / "missing.pem"
    with pytest.raises(CredentialsError, match=f"{words} .*missing.pem.* does not exist"):
        Credentials.from_files(paths["ca"], paths["cert"], paths["key"])


def test_folder_and_empty_file(pki: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="not a file"):
        Credentials.from_files(tmp_path, pki["cert"], pki["key"])
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    with pytest.raises(CredentialsError, match="is empty"):
        Credentials.from_files(pki["ca"], empty, pki["key"])


def test_wrong_kind_of_file(pki: dict[str, Path]) -> None:
    with pytest.raises(CredentialsError, match="does not hold a PEM certificate"):
        Credentials.from_files(pki["key"], pki["cert"], pki["key"])
    with pytest.raises(CredentialsError, match="does not hold a PEM private key"):
        Credentials.from_files(pki["ca"], pki["cert"], pki["cert"])


def test_key_of_another_certificate(pki: dict[str, Path]) -> None:
    with pytest.raises(CredentialsError, match="does not belong to client certificate"):
        Credentials.from_files(pki["ca"], pki["cert"], pki["other_key"])


def test_encrypted_key_is_refused_without_its_contents(pki: dict[str, Path]) -> None:
    with pytest.raises(CredentialsError, match="encrypted") as caught:
        Credentials.from_files(pki["ca"], pki["cert"], pki["encrypted_key"])
    assert "BEGIN" not in str(caught.value)
    assert caught.value.__cause__ is None
