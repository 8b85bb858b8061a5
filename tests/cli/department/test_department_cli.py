"""The requesting department's commands against a real node over real mutual TLS: ``bidui keys
request`` → ``bidui provider pki sign`` → ``bidui compare`` → ``pki revoke`` → refused; and
``bidui apply`` → the operator's decision → ``bidui applications`` → a comparison under the grant.

The node's clock and the commands' run from Monday 2026-03-02 09:00 in China (the sharing tests),
so deadlines are known dates; TLS checks real time.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from cryptography import x509

from provider_node.identity.names import serial_hex
from tests.cli.files import mode_of
from tests.cli.running import bidui, provider, refused
from tests.integration.conftest import NodeUnderTest, start

T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # Monday 09:00 in China
RESOURCE = "household_register"
DEPARTMENT = "luzhou-hrss"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    began = time.monotonic()
    running = start(
        tmp_path_factory.mktemp("department"),
        clock=lambda: T0 + dt.timedelta(seconds=time.monotonic() - began),
    )
    yield running
    running.started.stop(grace=1.0)


@pytest.fixture
def at_t0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bidui_cli.terminal.clock", lambda: T0)


def connection(node: NodeUnderTest, cert: Path | None = None, key: Path | None = None) -> list[str]:
    return [
        "--target",
        node.target,
        "--ca-cert",
        str(node.ca_cert),
        "--cert",
        str(cert or node.client_cert),
        "--key-file",
        str(key or node.client_key),
    ]


def compare(node: NodeUnderTest, tmp_path: Path, *args: str, resource: str = "residents") -> Result:
    source = tmp_path / "records.csv"
    with source.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id_number"])
        writer.writerows([[person[0]] for person in node.residents[:3] + node.absent[:2]])
    return bidui(
        "compare",
        "--input",
        source,
        "--resource",
        resource,
        "--key",
        "id_number",
        "--mode",
        "hashed",
        "--purpose",
        "checking pension applicants",
        "--output",
        tmp_path / "checked.csv",
        "--quiet",
        *args,
    )


def test_enrolment_by_csr_then_revocation(node: NodeUnderTest, tmp_path: Path) -> None:
    folder = tmp_path / "hrss"
    made = bidui("keys", "request", "--department", DEPARTMENT, "--dir", folder)
    assert made.exit_code == 0, made.output
    key, request = folder / f"{DEPARTMENT}.key", folder / f"{DEPARTMENT}.csr"
    assert mode_of(key) == 0o600
    assert key.read_text() not in made.output
    assert "send this file, and only this one" in made.output and "never leaves" in made.output

    signed = provider(node.config_path, "pki", "sign", request)
    assert signed.exit_code == 0, signed.output
    certificate = request.with_suffix(".pem")
    result = compare(node, tmp_path, *connection(node, certificate, key))
    assert result.exit_code == 0, result.output
    assert "matched: 3  not matched: 2" in result.output

    (serial,) = re.findall(r"serial\s+([0-9a-f]+)", signed.output)
    revoked = provider(node.config_path, "pki", "revoke", serial, "--reason", "staff left")
    assert revoked.exit_code == 0, revoked.output
    deadline = time.monotonic() + 5
    while (result := compare(node, tmp_path, *connection(node, certificate, key))).exit_code == 0:
        assert time.monotonic() < deadline, "the revocation never took effect"
        time.sleep(0.2)
    assert result.exit_code == 2 and "revoked" in result.output, result.output
    listed = provider(node.config_path, "pki", "list", "--department", DEPARTMENT)
    assert serial in listed.output and "staff left" in listed.output
    assert serial == serial_hex(x509.load_pem_x509_certificate(certificate.read_bytes()))


def test_keys_request_never_replaces_a_key(tmp_path: Path) -> None:
    assert bidui("keys", "request", "--department", DEPARTMENT, "--dir", tmp_path).exit_code == 0
    key = (tmp_path / f"{DEPARTMENT}.key").read_bytes()
    line = refused(bidui("keys", "request", "--department", DEPARTMENT, "--dir", tmp_path))
    assert "already exists" in line
    assert (tmp_path / f"{DEPARTMENT}.key").read_bytes() == key
    assert "not a department id" in refused(
        bidui("keys", "request", "--department", "Civil Affairs", "--dir", tmp_path)
    )


def apply(node: NodeUnderTest, *changes: str) -> Result:
    fields = {
        "--resource": RESOURCE,
        "--keys": "id_number",
        "--modes": "hashed,blinded",
        "--duty": "checking pension applicants",
        "--items-per-day": "100",
        "--valid-until": "2026-12-31",
    }
    fields.update(dict(zip(changes[::2], changes[1::2], strict=True)))
    return bidui("apply", *connection(node), *(x for pair in fields.items() for x in pair))


def application_id(result: Result) -> str:
    assert result.exit_code == 0, result.output
    (found,) = re.findall(r"application ([0-9a-f-]{36})", result.output.splitlines()[0])
    return found


@pytest.mark.usefixtures("at_t0")
def test_apply_decided_then_compare_under_the_grant(node: NodeUnderTest, tmp_path: Path) -> None:
    applied = apply(node)
    application = application_id(applied)
    assert "decision due by 2026-03-09" in applied.output
    listed = bidui("applications", *connection(node))
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if application in line)
    assert "pending" in row and "2026-03-09" in row and "7 days left" in row

    pending = provider(node.config_path, "applications", "list", "--status", "pending")
    assert application in pending.output
    approved = provider(
        node.config_path, "applications", "approve", application, "--modes", "hashed"
    )
    assert approved.exit_code == 0, approved.output
    shown = bidui("applications", "--id", application, *connection(node))
    assert shown.exit_code == 0, shown.output
    assert "approved" in shown.output and "modes hashed;" in shown.output
    (grant,) = re.findall(r"grant\s+([0-9a-f-]{36})", shown.output)

    result = compare(node, tmp_path, *connection(node), "--grant", grant, resource=RESOURCE)
    assert result.exit_code == 0, result.output
    assert "matched: 3" in result.output


@pytest.mark.usefixtures("at_t0")
def test_a_refusal_shows_its_reason(node: NodeUnderTest) -> None:
    application = application_id(apply(node, "--keys", "id_number+name"))
    refusal = provider(
        node.config_path, "applications", "refuse", application, "--reason", "names not needed"
    )
    assert refusal.exit_code == 0, refusal.output
    shown = bidui("applications", "--id", application, *connection(node))
    assert "refused" in shown.output and "reason       names not needed" in shown.output
    listed = bidui("applications", "--resource", RESOURCE, *connection(node))
    assert "names not needed" in listed.output


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (("--valid-until", "2026-13-01"), "--valid-until: '2026-13-01' is not a date"),
        (("--items-per-day", "many"), "is not a whole number"),
        (("--modes", "private"), "'private' is not one of blinded, hashed"),
        (("--duty", " "), "--duty must not be blank"),
        (("--resource", "residents"), "shared unconditionally"),
        (("--resource", "nothing_here"), "no resource"),
        (("--keys", "phone"), "no comparison key"),
    ],
)
def test_apply_mistakes_are_one_line(
    node: NodeUnderTest, changes: tuple[str, str], says: str
) -> None:
    assert says in refused(apply(node, *changes))


def test_applications_mistakes_are_one_line(node: NodeUnderTest, tmp_path: Path) -> None:
    line = refused(bidui("applications", "--id", "nope", *connection(node)))
    assert "nope" in line
    missing = connection(node, cert=tmp_path / "absent.pem")
    assert "does not exist" in refused(bidui("applications", *missing))
    line = refused(bidui("apply", *connection(node), "--resource", RESOURCE))
    assert "Missing option" in line and "bidui apply --help" in line
