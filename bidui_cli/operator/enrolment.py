"""``bidui provider pki sign | list | revoke``: enrolling departments by their own CSR; revoking.

```
department (its own machine)              provider's operator
bidui keys request --department D  ---->  bidui provider pki sign D.csr
  D.key stays there; D.csr is sent          D.pem + the CA certificate go back
                                          bidui provider pki list
                                          bidui provider pki revoke SERIAL --reason …
                                            every node process refuses it within a second
```

Signing and revoking are governance actions: the certificate register and the audit record change
in one transaction (``provider_node.identity.enrolment``). Only a development CA made by ``provider
init``
(``ca.key`` beside ``ca.pem``) signs here; a CA key kept elsewhere (``tls.ca_key``) is the
operator's own CA, which bidui never signs with. ``main.py`` adds these commands to the ``pki``
group of ``rotation.py``.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import click
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from bidui_cli.errors import fail
from bidui_cli.operator.governance import governance, operator_option, reason_option
from bidui_cli.options import config_option
from bidui_cli.terminal import moment, read_file, table, whole_number
from provider_node.config import NodeConfig
from provider_node.identity import enrolment
from provider_node.identity.auth import MAX_CERTIFICATE_LIFETIME
from provider_node.identity.names import (
    CertificateIdentityError,
    department_from_certificate,
    serial_hex,
)
from provider_node.identity.pki import CERT_VALIDITY, CertificateAuthority, load_ca

__all__ = ["list_certificates", "revoke", "sign"]


def _signing_ca(config: NodeConfig) -> CertificateAuthority:
    """The development CA that signs here, or one line saying why none does."""
    tls = config.tls
    beside = tls.ca_cert.parent / "ca.key"
    if tls.ca_key is not None and (tls.ca_key != beside or tls.ca_cert.name != "ca.pem"):
        fail(
            f"tls.ca_key {tls.ca_key} is your own CA's key, kept apart from {tls.ca_cert}: bidui "
            "never signs with it; sign the request with that CA's own tools"
        )
    if tls.ca_key is None or not beside.is_file():
        fail(
            f"this node has no CA key to sign with ({beside} does not exist): sign the request "
            f"with the CA of {tls.ca_cert}"
        )
    try:
        return load_ca(beside.parent)
    except (OSError, ValueError) as exc:
        fail(f"cannot load the CA in {beside.parent}: {exc}")


def _write_certificate(path: Path, certificate: x509.Certificate) -> None:
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    try:
        with path.open("xb") as out:  # never replaces a file, even one made meanwhile
            out.write(pem)
    except OSError as exc:
        fail(
            f"certificate {serial_hex(certificate)} was signed and recorded, but cannot be "
            f"written to {path} ({exc.strerror or exc}); here it is:\n{pem.decode().strip()}"
        )


@click.command("sign")
@config_option()
@click.argument("request", metavar="REQUEST.csr", type=click.Path(path_type=Path))
@click.option(
    "--department",
    metavar="ID",
    default=None,
    help="Sign only if the request names this department (its urn:bidui:department: URI SAN).",
)
@click.option(
    "--days",
    metavar="N",
    default=str(CERT_VALIDITY.days),
    show_default=True,
    callback=whole_number(1, MAX_CERTIFICATE_LIFETIME.days),
    help=f"Days the certificate is valid (1 to {MAX_CERTIFICATE_LIFETIME.days}); never beyond "
    "the CA's own end.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to write the certificate (default: beside the request, REQUEST.pem); an "
    "existing file is never replaced.",
)
@click.option(
    "--renew",
    is_flag=True,
    help="Sign although the request's key already has a valid certificate here (a renewal); "
    "revoking either certificate later revokes both.",
)
@operator_option
def sign(
    config_path: Path,
    request: Path,
    department: str | None,
    days: int,
    out: Path | None,
    renew: bool,
    operator: str | None,
) -> None:
    """Sign a department's certificate signing request with the node's CA.

    The department made its key and REQUEST.csr with `bidui keys request`; the key never leaves
    it. The certificate names the department of the request's urn:bidui:department: URI SAN and
    serves for client authentication only; the usages and lifetime are the CA's, not the
    request's. Records the certificate in the node's register (`pki list`) and the signing in the
    audit log, in one transaction. A CA key kept apart from the CA certificate (tls.ca_key) is
    your own CA: refused, sign with its own tools.
    """
    pem = read_file(request, "certificate request")
    out = out if out is not None else request.with_suffix(".pem")
    if out.exists():
        fail(f"{out} exists: give another --out, or move it away first")
    if not out.absolute().parent.is_dir():
        fail(f"cannot write {out}: folder {out.absolute().parent} does not exist")
    with governance(config_path, operator) as act:
        ca = _signing_ca(act.config)
        try:
            certificate = enrolment.sign(
                ca,
                pem,
                act.audit,
                operator=act.operator,
                now=act.now,
                department=department,
                validity=_dt.timedelta(days=days),
                renew=renew,
            )
        except CertificateIdentityError as exc:
            fail(f"{request} {exc}")
    _write_certificate(out, certificate)
    named = department_from_certificate(certificate)
    click.echo(f"Signed a client certificate for department {named}")
    click.echo(f"  serial       {serial_hex(certificate)}")
    click.echo(f"  department   {named}")
    click.echo(
        f"  valid        {moment(certificate.not_valid_before_utc)} to "
        f"{moment(certificate.not_valid_after_utc)}"
    )
    click.echo(f"  written to   {out}")
    click.echo("Send the department these two files (neither is secret):")
    click.echo(f"  {out}  its certificate")
    click.echo(f"  {ca.cert_path}  the CA certificate, to check this node by")
    click.echo("With them and the key it kept, the department connects to this node.")


@click.command("list")
@config_option()
@click.option("--department", metavar="ID", default=None, help="Only this department's.")
def list_certificates(config_path: Path, department: str | None) -> None:
    """The client certificates signed here (`pki sign`), newest first, with any revocation.

    Changes nothing. A certificate made by `provider init --client` (development) is listed once
    it is revoked with `pki revoke --certificate`.
    """
    with governance(config_path) as act:
        rows = [
            row
            for row in enrolment.certificates(act.sessions)
            if department is None or row.department == department
        ]
    if not rows:
        whose = f" for department {department}" if department else ""
        click.echo(f"no certificates signed here{whose}")
        return
    table(
        ("serial", "department", "valid until", "revoked"),
        [
            (
                row.serial,
                row.department,
                moment(row.not_after),
                "-"
                if row.revoked_at is None
                else f"{moment(row.revoked_at)}: {row.revocation_reason}",
            )
            for row in rows
        ],
    )


def _load_certificate(path: Path, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(read_file(path, what))
    except ValueError:
        fail(f"{what} {path} is not a PEM certificate")


def _certificate_of(path: Path, config: NodeConfig) -> x509.Certificate:
    """The certificate in ``path``, if this node's CA issued it."""
    certificate = _load_certificate(path, "certificate")
    ca = _load_certificate(config.tls.ca_cert, "CA certificate")
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        fail(f"{path} was not issued by this node's CA ({config.tls.ca_cert})")
    return certificate


@click.command("revoke")
@config_option()
@click.argument("serial", required=False)
@click.option(
    "--certificate",
    "certificate_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The certificate file instead of its serial; also one `provider init --client` made.",
)
@reason_option("`pki list` shows it")
@operator_option
def revoke(
    config_path: Path,
    serial: str | None,
    certificate_path: Path | None,
    reason: str,
    operator: str | None,
) -> None:
    """Revoke a department's client certificate, given by SERIAL (`pki list`) or --certificate.

    Every node process sharing this node's database refuses the certificate within a second, on
    connections already open too (UNAUTHENTICATED, audited). Records the revocation and its
    reason in the audit log, in one transaction. It cannot be undone: the department makes a new
    key and request (`bidui keys request`) for you to sign.
    """
    if (serial is None) == (certificate_path is None):
        fail("name the certificate by its SERIAL or by --certificate FILE (one of the two)")
    with governance(config_path, operator) as act:
        which: x509.Certificate | str
        if certificate_path is not None:
            which = _certificate_of(certificate_path, act.config)
        else:
            which = str(serial).strip()
        try:
            revoked = enrolment.revoke(act.audit, which, reason, operator=act.operator, now=act.now)
        except ValueError as exc:  # a serial that is no hexadecimal number
            fail(f"serial {which!r}: {exc}")
        departments = {row.serial: row.department for row in enrolment.certificates(act.sessions)}
    click.echo(f"Revoked certificate {revoked} of department {departments.get(revoked, '?')}.")
    click.echo(
        "Every node process sharing this database refuses it within a second, on connections "
        "already open too."
    )
