"""Credentials.from_files: the SDK checks its own certificate before connecting, and every
refusal names the file and the fix, never the key's contents."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from client_sdk.connection.credentials import Credentials
from client_sdk.errors import CredentialsError
from tests.client_sdk.tls_pki import CLIENT_AUTH, SERVER_AUTH, Authority, Issued


@pytest.fixture(scope="module")
def ca() -> Authority:
    return Authority("node CA")


@pytest.fixture
def files(tmp_path: Path, ca: Authority) -> dict[str, Path]:
    cert, key = ca.department().write(tmp_path, "civil-affairs")
    return {"ca": ca.write(tmp_path), "cert": cert, "key": key}


def _client(tmp_path: Path, issued: Issued, name: str = "odd") -> tuple[Path, Path]:
    return issued.write(tmp_path, name)


def test_reads_and_checks_three_pem_files(files: dict[str, Path]) -> None:
    credentials = Credentials.from_files(files["ca"], files["cert"], str(files["key"]))
    assert credentials.root_certificates == files["ca"].read_bytes()
    assert credentials.certificate_chain == files["cert"].read_bytes()
    assert credentials.department == "civil-affairs"
    assert credentials.certificate_file == str(files["cert"])
    assert credentials.check() == "civil-affairs"
    assert isinstance(credentials.channel_credentials(), grpc.ChannelCredentials)


def test_private_key_is_not_in_repr(files: dict[str, Path]) -> None:
    credentials = Credentials.from_files(files["ca"], files["cert"], files["key"])
    assert "PRIVATE" not in repr(credentials)
    assert "private_key=" not in repr(credentials)


@pytest.mark.parametrize(
    ("which", "words"),
    [("ca", "CA certificate file"), ("cert", "client certificate file"), ("key", "client key")],
)
def test_missing_file_is_named(files: dict[str, Path], which: str, words: str) -> None:
    paths = dict(files)
    paths[which] = files["ca"].parent / "missing.pem"
    with pytest.raises(CredentialsError, match=f"{words} .*missing.pem.* does not exist"):
        Credentials.from_files(paths["ca"], paths["cert"], paths["key"])


def test_folder_and_empty_file(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="not a file"):
        Credentials.from_files(tmp_path, files["cert"], files["key"])
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    with pytest.raises(CredentialsError, match="is empty"):
        Credentials.from_files(files["ca"], empty, files["key"])


def test_wrong_kind_of_file(files: dict[str, Path]) -> None:
    with pytest.raises(CredentialsError, match="does not hold a PEM certificate"):
        Credentials.from_files(files["key"], files["cert"], files["key"])
    with pytest.raises(CredentialsError, match="does not hold a PEM private key"):
        Credentials.from_files(files["ca"], files["cert"], files["cert"])


def test_key_of_another_certificate(files: dict[str, Path], ca: Authority, tmp_path: Path) -> None:
    _, other_key = _client(tmp_path, ca.department("civil-affairs"))
    with pytest.raises(CredentialsError, match="does not belong to client certificate") as caught:
        Credentials.from_files(files["ca"], files["cert"], other_key)
    assert str(other_key) in str(caught.value)


def test_encrypted_key_is_refused_without_its_contents(
    files: dict[str, Path], ca: Authority, tmp_path: Path
) -> None:
    issued = ca.department()
    cert, _ = _client(tmp_path, issued)
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(
        issued.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(CredentialsError, match="encrypted") as caught:
        Credentials.from_files(files["ca"], cert, encrypted)
    assert "BEGIN" not in str(caught.value)
    assert caught.value.__cause__ is None


# -- the certificate the node would refuse ----------------------------------------------------


def test_expired_certificate_names_the_date_and_the_fix(
    files: dict[str, Path], ca: Authority, tmp_path: Path
) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=20)
    cert, key = _client(tmp_path, ca.department(not_before=long_ago, lifetime=dt.timedelta(days=3)))
    with pytest.raises(CredentialsError, match=r"odd\.pem' expired on .* UTC: ask the node's op"):
        Credentials.from_files(files["ca"], cert, key)


def test_not_yet_valid_certificate_points_at_the_clock(
    files: dict[str, Path], ca: Authority, tmp_path: Path
) -> None:
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    cert, key = _client(tmp_path, ca.department(not_before=tomorrow))
    with pytest.raises(CredentialsError, match=r"is not valid before .*check this machine's clock"):
        Credentials.from_files(files["ca"], cert, key)


def test_validity_is_checked_at_an_injected_time(files: dict[str, Path]) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
    with pytest.raises(CredentialsError, match="expired"):
        Credentials.from_files(files["ca"], files["cert"], files["key"], now=later)
    credentials = Credentials.from_files(files["ca"], files["cert"], files["key"])
    with pytest.raises(CredentialsError, match="expired"):
        credentials.check(later)


def test_certificate_of_another_ca_does_not_chain(files: dict[str, Path], tmp_path: Path) -> None:
    cert, key = _client(tmp_path, Authority("rogue CA").department())
    with pytest.raises(CredentialsError) as caught:
        Credentials.from_files(files["ca"], cert, key)
    message = str(caught.value)
    assert "(issued by 'CN=rogue CA') does not chain to CA certificate file" in message
    assert "(which holds 'CN=node CA'): none of them issued it" in message
    assert "Give the CA certificate of the node you connect to" in message


@pytest.mark.parametrize(
    ("usages", "words"),
    [
        ([SERVER_AUTH], "not issued for client authentication"),
        ([], "not issued for client authentication"),  # no extended key usage at all
        ([SERVER_AUTH, CLIENT_AUTH], None),
    ],
)
def test_client_authentication_usage_is_required(
    files: dict[str, Path],
    ca: Authority,
    tmp_path: Path,
    usages: list[x509.ObjectIdentifier],
    words: str | None,
) -> None:
    cert, key = _client(tmp_path, ca.department(usages=usages))
    if words is None:
        assert Credentials.from_files(files["ca"], cert, key).department == "civil-affairs"
        return
    with pytest.raises(CredentialsError, match=words):
        Credentials.from_files(files["ca"], cert, key)


@pytest.mark.parametrize(
    ("department", "words"),
    [(None, "names no department"), ("Civil Affairs", "not a valid department id")],
)
def test_department_urn_is_required(
    files: dict[str, Path], ca: Authority, tmp_path: Path, department: str | None, words: str
) -> None:
    cert, key = _client(tmp_path, ca.department(department))
    with pytest.raises(CredentialsError, match=words) as caught:
        Credentials.from_files(files["ca"], cert, key)
    assert "odd.pem" in str(caught.value)
