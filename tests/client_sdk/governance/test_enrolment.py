"""A department's own key and certificate request: what is written, what the node's operator can
sign, and what is refused (an existing key above all).

The signing is the node's own (``provider_node.identity.pki.sign_client_request``): tests may
import the
node, the SDK may not.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from client_sdk import Credentials, CredentialsError, make_key_and_request
from provider_node.identity.pki import create_ca, sign_client_request

DEPARTMENT = "luzhou-housing_bureau-2"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_key_is_p256_readable_by_its_owner_only(tmp_path: Path) -> None:
    key_path, csr_path = make_key_and_request(DEPARTMENT, tmp_path / "pki" / "mine")
    assert (key_path, csr_path) == (
        tmp_path / "pki" / "mine" / f"{DEPARTMENT}.key",
        tmp_path / "pki" / "mine" / f"{DEPARTMENT}.csr",
    )
    assert _mode(key_path) == 0o600
    assert _mode(key_path.parent) == 0o700  # made here, so made private
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def test_the_request_names_the_department_only_as_the_node_reads_it(tmp_path: Path) -> None:
    key_path, csr_path = make_key_and_request(DEPARTMENT, tmp_path)
    request = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert request.is_signature_valid
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert request.public_key() == key.public_key()
    assert request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DEPARTMENT
    names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(names) == [x509.UniformResourceIdentifier(f"urn:bidui:department:{DEPARTMENT}")]
    usages = request.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_the_node_s_operator_signs_it_and_the_sdk_accepts_the_result(tmp_path: Path) -> None:
    key_path, csr_path = make_key_and_request(DEPARTMENT, tmp_path / "department")
    ca = create_ca(tmp_path / "node", "node CA")
    certificate = sign_client_request(ca, csr_path.read_bytes(), department=DEPARTMENT)
    cert_path = tmp_path / "department" / f"{DEPARTMENT}.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    credentials = Credentials.from_files(ca.cert_path, cert_path, key_path)
    assert credentials.department == DEPARTMENT


def test_an_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    key_path, csr_path = make_key_and_request(DEPARTMENT, tmp_path)
    key, request = key_path.read_bytes(), csr_path.read_bytes()
    with pytest.raises(CredentialsError, match="already exists and is kept as it is"):
        make_key_and_request(DEPARTMENT, tmp_path)
    assert (key_path.read_bytes(), csr_path.read_bytes()) == (key, request)


def test_a_link_where_the_key_would_go_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / f"{DEPARTMENT}.key").symlink_to(target)  # dangling: O_EXCL still refuses it
    with pytest.raises(CredentialsError, match="already exists"):
        make_key_and_request(DEPARTMENT, tmp_path)
    assert not target.exists()


def test_a_request_left_from_an_earlier_key_is_replaced(tmp_path: Path) -> None:
    (tmp_path / f"{DEPARTMENT}.csr").write_text("stale")
    _, csr_path = make_key_and_request(DEPARTMENT, tmp_path)
    assert x509.load_pem_x509_csr(csr_path.read_bytes()).is_signature_valid
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{DEPARTMENT}.csr", f"{DEPARTMENT}.key"]


@pytest.mark.parametrize(
    "department",
    ["", "Civil-Affairs", "-civil", "_civil", "civil affairs", "民政局", "c" * 65, "a/b", "a.b"],
)
def test_a_department_id_the_node_would_refuse_is_refused_here(
    tmp_path: Path, department: str
) -> None:
    with pytest.raises(CredentialsError, match="is not a department id"):
        make_key_and_request(department, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_longest_id_is_accepted(tmp_path: Path) -> None:
    key_path, _ = make_key_and_request("0" + "x" * 63, tmp_path)
    assert key_path.exists()


def test_when_the_request_cannot_be_written_no_key_is_left(tmp_path: Path) -> None:
    (tmp_path / f"{DEPARTMENT}.csr").mkdir()  # something that cannot be replaced by a file
    with pytest.raises(CredentialsError, match="cannot write certificate request"):
        make_key_and_request(DEPARTMENT, tmp_path)
    assert not (tmp_path / f"{DEPARTMENT}.key").exists()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_a_directory_that_cannot_be_made_says_so(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(CredentialsError, match="cannot make directory"):
        make_key_and_request(DEPARTMENT, tmp_path / "file")


def test_nothing_of_the_key_is_in_an_error(tmp_path: Path) -> None:
    key_path, _ = make_key_and_request(DEPARTMENT, tmp_path)
    secret = key_path.read_text().splitlines()[1]
    with pytest.raises(CredentialsError) as caught:
        make_key_and_request(DEPARTMENT, tmp_path)
    assert secret not in str(caught.value) and "PRIVATE KEY" not in str(caught.value)


def test_the_key_mode_does_not_depend_on_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        key_path, csr_path = make_key_and_request(DEPARTMENT, tmp_path)
    finally:
        os.umask(previous)
    assert (_mode(key_path), _mode(csr_path)) == (0o600, 0o644)
