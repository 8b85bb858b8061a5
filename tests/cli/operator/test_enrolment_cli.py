"""``bidui provider pki sign | list | revoke``: a department's own CSR signed with the development
CA, registered and audited; every mistake one line and exit code 2, nothing signed or written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from client_sdk import make_key_and_request
from provider_node.identity.names import department_from_certificate, serial_hex
from provider_node.setup.bootstrap import init_node
from tests.cli.files import node_files
from tests.cli.running import audited, bidui, provider, refused

DEPARTMENT = "luzhou-civil-affairs"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return init_node(tmp_path / "node", clients=("luzhou-tax",)).config_path


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    _, csr = make_key_and_request(DEPARTMENT, tmp_path / "department")
    return csr


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_sign_writes_registers_and_audits(config: Path, request_file: Path) -> None:
    result = provider(config, "pki", "sign", request_file, "--days", "90", "--operator", "Wang Li")
    assert result.exit_code == 0, result.output
    issued = request_file.with_suffix(".pem")
    signed = certificate(issued)
    ca = certificate(config.parent / "pki" / "ca.pem")
    signed.verify_directly_issued_by(ca)
    assert department_from_certificate(signed) == DEPARTMENT
    assert (signed.not_valid_after_utc - signed.not_valid_before_utc).days == 90
    serial = serial_hex(signed)
    for shown in (serial, DEPARTMENT, str(issued), "ca.pem", "valid"):
        assert shown in result.output
    request_key = x509.load_pem_x509_csr(request_file.read_bytes()).public_key()
    assert signed.public_key() == request_key  # only the department's public key was used

    listed = provider(config, "pki", "list")
    assert listed.exit_code == 0, listed.output
    assert serial in listed.output and DEPARTMENT in listed.output
    (record,) = [r for r in audited(config) if r["action"] == "certificate_signing"]
    assert (record["requester"], record["cert_serial"]) == ("Wang Li", serial)


def test_sign_names_the_node_department_as_operator_by_default(
    config: Path, request_file: Path
) -> None:
    assert provider(config, "pki", "sign", request_file).exit_code == 0
    (record,) = [r for r in audited(config) if r["action"] == "certificate_signing"]
    assert record["requester"] == "luzhou-psb"


def _garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.csr"
    path.write_text("-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n")
    return path


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (lambda tmp, csr: [tmp / "absent.csr"], "does not exist"),
        (lambda tmp, csr: [_garbage(tmp)], "is not a PEM certificate signing request"),
        (lambda tmp, csr: [csr, "--department", "luzhou-tax"], "names department"),
        (lambda tmp, csr: [csr, "--days", "0"], "--days: 0 is not from 1 to 398"),
        (lambda tmp, csr: [csr, "--days", "399"], "is not from 1 to 398"),
        (lambda tmp, csr: [csr, "--days", "a year"], "is not a whole number"),
        (lambda tmp, csr: [csr, "--out", tmp / "none" / "x.pem"], "does not exist"),
        (lambda tmp, csr: [csr, "--out", csr], "exists"),
        (lambda tmp, csr: [csr, "--operator", " "], "--operator must name who acts"),
    ],
    ids=[
        "missing",
        "not-a-csr",
        "other-department",
        "zero-days",
        "too-long",
        "not-a-number",
        "no-folder",
        "existing-out",
        "blank-operator",
    ],
)
def test_sign_refuses_mistakes_signing_nothing(
    config: Path,
    request_file: Path,
    tmp_path: Path,
    arguments: Callable[[Path, Path], list[str | Path]],
    says: str,
) -> None:
    before = node_files(config.parent)
    line = refused(provider(config, "pki", "sign", *arguments(tmp_path, request_file)))
    assert says in line
    assert node_files(config.parent) == before
    assert not request_file.with_suffix(".pem").exists()
    if (config.parent / "audit.db").exists():  # most mistakes are found before it is opened
        assert "certificate_signing" not in [r["action"] for r in audited(config)]


def test_sign_refuses_the_operators_own_ca(config: Path, request_file: Path) -> None:
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[tls]\n", '[tls]\nca_key = "offline/ca.key"\n'))
    line = refused(provider(config, "pki", "sign", request_file))
    assert "your own CA" in line and "never signs with it" in line
    assert not request_file.with_suffix(".pem").exists()


def test_revoke_by_serial_is_listed_and_audited(config: Path, request_file: Path) -> None:
    assert provider(config, "pki", "sign", request_file).exit_code == 0
    serial = serial_hex(certificate(request_file.with_suffix(".pem")))
    result = provider(config, "pki", "revoke", serial.upper(), "--reason", "laptop stolen")
    assert result.exit_code == 0, result.output
    assert f"Revoked certificate {serial} of department {DEPARTMENT}" in result.output
    assert "within a second" in result.output and "connections" in result.output
    listed = provider(config, "pki", "list", "--department", DEPARTMENT)
    assert "laptop stolen" in listed.output
    (record,) = [r for r in audited(config) if r["action"] == "certificate_revocation"]
    assert record["cert_serial"] == serial and "laptop stolen" in record["reason"]
    again = refused(provider(config, "pki", "revoke", serial, "--reason", "again"))
    assert "already revoked" in again


def test_revoke_a_development_certificate_by_file(config: Path) -> None:
    issued = config.parent / "pki" / "clients" / "luzhou-tax.pem"
    result = provider(config, "pki", "revoke", "--certificate", issued, "--reason", "moved")
    assert result.exit_code == 0, result.output
    assert "luzhou-tax" in provider(config, "pki", "list").output


def test_revoke_refuses_a_certificate_of_another_ca(config: Path, tmp_path: Path) -> None:
    other = init_node(tmp_path / "other", clients=("luzhou-tax",)).directory
    stranger = other / "pki" / "clients" / "luzhou-tax.pem"
    line = refused(provider(config, "pki", "revoke", "--certificate", stranger, "--reason", "x"))
    assert "was not issued by this node's CA" in line


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["abc123"], "--reason is required"),
        (["abc123", "--reason", "  "], "--reason must not be blank"),
        (["--reason", "lost"], "SERIAL or by --certificate"),
        (["not-hex", "--reason", "lost"], "hexadecimal"),
        (["abc123", "--reason", "lost"], "no certificate with serial abc123"),
        (["--certificate", "absent.pem", "--reason", "lost"], "does not exist"),
    ],
)
def test_revoke_refuses_mistakes(config: Path, arguments: list[str], says: str) -> None:
    assert says in refused(provider(config, "pki", "revoke", *arguments))


def test_list_with_nothing_signed(config: Path) -> None:
    result = provider(config, "pki", "list")
    assert result.exit_code == 0 and "no certificates signed here" in result.output


def test_a_written_certificate_is_pem(config: Path, request_file: Path) -> None:
    out = request_file.parent / "signed" / "cert.pem"
    out.parent.mkdir()
    assert provider(config, "pki", "sign", request_file, "--out", out).exit_code == 0
    assert out.read_bytes() == certificate(out).public_bytes(serialization.Encoding.PEM)
    assert bidui("provider", "pki", "sign", "--help").exit_code == 0


def test_a_second_certificate_for_one_key_needs_renew_and_falls_with_the_first(
    config: Path, request_file: Path
) -> None:
    assert provider(config, "pki", "sign", request_file).exit_code == 0
    first = serial_hex(certificate(request_file.with_suffix(".pem")))
    again = refused(provider(config, "pki", "sign", request_file, "--out", "second.pem"))
    assert f"already has a valid certificate here (serial {first}" in again and "--renew" in again
    second_path = request_file.parent / "second.pem"
    renewed = provider(config, "pki", "sign", request_file, "--out", second_path, "--renew")
    assert renewed.exit_code == 0, renewed.output
    second = serial_hex(certificate(second_path))
    assert second != first

    # The key is lost: revoking the first certificate revokes the second as well.
    assert provider(config, "pki", "revoke", first, "--reason", "key lost").exit_code == 0
    listed = provider(config, "pki", "list", "--department", DEPARTMENT).output
    assert listed.count("key lost") == 2, listed
    # One record for each certificate revoked: both are facts in the hash chain.
    records = {
        r["cert_serial"]: r for r in audited(config) if r["action"] == "certificate_revocation"
    }
    assert set(records) == {first, second}
    assert f"(with {first}, of the same key)" in records[second]["reason"]
