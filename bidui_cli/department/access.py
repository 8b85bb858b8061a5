"""``bidui keys request``, ``bidui apply`` and ``bidui applications``: a requesting department's
enrolment, and its applications for conditional resources (articles 25, 31, 34).

```
bidui keys request --department D --dir DIR   DIR/D.key (0600, stays in DIR), DIR/D.csr (sent)
    the provider's operator: bidui provider pki sign D.csr  ->  D.pem and ca.pem come back
bidui apply --resource R --keys … --modes … --duty … --items-per-day N --valid-until DATE
    -> an application, decided by the operator within 5 Chinese working days
bidui applications [--id ID]                  status, deadline, the reason, the grant
bidui compare … [--grant GRANT_ID]
```

The node's operator decides on the node's own machine (``bidui provider applications``); a
department sees only its own applications. Failures end as ``compare``'s do
(``connection.reported``): exit code 2 for a mistake to fix, 1 for a failure of the service.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import cast

import click

from bidui_cli import terminal
from bidui_cli.department.connection import NodeAddress, node_options, reported
from bidui_cli.terminal import (
    days_until,
    deadline,
    iso_date,
    moment,
    name_list,
    required_text,
    whole_number,
)
from client_sdk import make_key_and_request
from client_sdk.comparison.catalog import AnswerName, ComparisonMode
from client_sdk.governance.sharing import Application, ApplicationStatus, Grant
from comparator.china_time import china_date

__all__ = ["apply", "department_applications", "keys"]

_MODES = ("blinded", "hashed")
_ANSWERS = ("match", "verify", "count")
_TIMEOUT = 30.0
#: The node's own bound (provider_node.governance.grant_fields.MAX_ITEMS_PER_DAY), checked again
#: there.
_MAX_ITEMS_PER_DAY = 10**9


@click.group("keys")
def keys() -> None:
    """Your department's own key and certificate request, made on your machine."""


@keys.command("request")
@click.option(
    "--department",
    required=True,
    metavar="ID",
    help="Your department's id, as the provider's operator knows it (e.g. luzhou-civil-affairs).",
)
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for ID.key and ID.csr (made, readable by you only, if absent).",
)
def request(department: str, directory: Path) -> None:
    """Make your department's private key and a certificate request (CSR) for it.

    Writes DIR/ID.key (EC P-256, readable by you only; an existing key is never replaced) and
    DIR/ID.csr, which names your department (urn:bidui:department:ID). Send the .csr, and only
    it, to the provider's operator: the key never leaves DIR. Nothing changes at any node until
    the operator signs the request (`bidui provider pki sign`) and sends back your certificate
    and the CA certificate.
    """
    with reported():
        key_path, csr_path = make_key_and_request(department, directory)
    click.echo(f"Made a key and a certificate request for department {department}:")
    click.echo(f"  {key_path}  your private key: it never leaves {directory}; keep it safe")
    click.echo(f"  {csr_path}  the request: send this file, and only this one, to the operator")
    click.echo(
        f"The operator sends back {csr_path.with_suffix('.pem').name} (your certificate) and "
        "the CA certificate; then connect with"
    )
    click.echo(f"  --ca-cert ca.pem --cert {csr_path.with_suffix('.pem')} --key-file {key_path}")


def _grant_terms(grant: Grant) -> str:
    state = "" if grant.revoked_at is None else f"; revoked {moment(grant.revoked_at)}"
    return (
        f"{grant.id}: keys {', '.join(grant.comparison_keys)}; modes {', '.join(grant.modes)}; "
        f"answers {', '.join(grant.answers)}; {grant.items_per_day:,} items per day; "
        f"{grant.valid_from} to {grant.valid_until}"
        f"{state}"
    )


def _deadline(application: Application) -> str:
    return deadline(application.decision_deadline, application.deadline_provisional)


def _standing(application: Application) -> str:
    """Days left for a pending one; the grant of an approved one; a refusal's reason."""
    if application.status is ApplicationStatus.PENDING:
        today = china_date(terminal.clock())
        return f"decision {days_until(application.decision_deadline, today)}"
    grant = application.grant
    if grant is not None:
        return f"grant {grant.id}" + ("" if grant.revoked_at is None else " (revoked)")
    return application.decision_reason or "-"


def _print_application(application: Application) -> None:
    lines = [
        ("application", application.id),
        ("resource", application.resource_id),
        ("keys", ", ".join(application.comparison_keys)),
        ("modes", ", ".join(application.modes)),
        ("answers", ", ".join(application.answers)),
        ("duty", application.duty),
        ("items/day", f"{application.items_per_day:,}"),
        ("valid until", str(application.valid_until)),
        ("submitted", moment(application.submitted_at)),
        ("deadline", f"{_deadline(application)} (5 working days, China time)"),
        ("status", application.status.value),
    ]
    if application.status is ApplicationStatus.PENDING:
        lines.append(("standing", _standing(application)))
    if application.decided_at is not None:
        lines.append(("decided", moment(application.decided_at)))
    if application.decision_reason:
        title = "reason" if application.status is ApplicationStatus.REFUSED else "note"
        lines.append((title, application.decision_reason))
    if application.grant is not None:
        lines.append(("grant", _grant_terms(application.grant)))
        if application.grant.revocation_reason:
            lines.append(("revoked for", application.grant.revocation_reason))
    for title, value in lines:
        click.echo(f"{title:<12} {value}")


@click.command("apply")
@node_options
@click.option("--resource", required=True, metavar="ID", help="The conditional resource.")
@click.option(
    "--keys",
    "key_names",
    required=True,
    metavar="K1,K2",
    callback=name_list(),
    help="The comparison keys you need, comma-separated (see the resource's catalog entry).",
)
@click.option(
    "--modes",
    required=True,
    metavar="MODES",
    callback=name_list(_MODES),
    help=f"The comparison modes you need: {' or '.join(_MODES)}, or both, comma-separated.",
)
@click.option(
    "--answers",
    metavar="ANSWERS",
    default="match",
    show_default=True,
    callback=name_list(_ANSWERS),
    help="What the comparisons may answer, comma-separated: match (bits), verify (核验), count.",
)
@click.option(
    "--duty",
    callback=required_text,
    help="The duty the comparisons serve (required, article 31); no personal data.",
)
@click.option(
    "--items-per-day",
    required=True,
    metavar="N",
    callback=whole_number(1, _MAX_ITEMS_PER_DAY),
    help="Records you need to compare per day (China time).",
)
@click.option(
    "--valid-until",
    required=True,
    metavar="YYYY-MM-DD",
    callback=iso_date,
    help="The last day you need the grant (in China).",
)
def apply(
    node: NodeAddress,
    resource: str,
    key_names: tuple[str, ...],
    modes: tuple[str, ...],
    answers: tuple[str, ...],
    duty: str,
    items_per_day: int,
    valid_until: _dt.date,
) -> None:
    """Apply for a conditional resource (article 25), stating the duty it serves.

    The node records the application (and audits it) with its decision deadline: 5 Chinese
    working days. Its operator approves, perhaps narrower than asked, or refuses with a reason;
    see which with `bidui applications`. Apply once: an application whose answer was lost may
    already be on record, so look at `bidui applications` before applying again.
    """
    with reported(), node.client(timeout=_TIMEOUT) as client:
        application = client.apply(
            resource,
            keys=key_names,
            modes=cast(tuple[ComparisonMode, ...], modes),
            duty=duty,
            items_per_day=items_per_day,
            valid_until=valid_until,
            answers=cast(tuple[AnswerName, ...], answers),
        )
    click.echo(f"Applied for {application.resource_id}: application {application.id}")
    click.echo(f"  decision due by {_deadline(application)} (5 working days, China time)")
    click.echo(f"  see it with: bidui applications --id {application.id}")


@click.command("applications")
@node_options
@click.option("--id", "application_id", metavar="ID", default=None, help="Only this one, whole.")
@click.option("--resource", metavar="ID", default=None, help="Only those for this resource.")
def department_applications(
    node: NodeAddress, application_id: str | None, resource: str | None
) -> None:
    """Your department's applications: status, decision deadline, the reason, the grant.

    Changes nothing. An approved application's grant id is what `bidui compare --grant` takes.
    """
    with reported(), node.client(timeout=_TIMEOUT) as client:
        if application_id is not None:
            shown = client.application(application_id)
        else:
            found = client.applications(resource)
    if application_id is not None:
        _print_application(shown)
        return
    if not found:
        click.echo("no applications")
        return
    terminal.table(
        ("id", "resource", "submitted", "deadline", "status", "reason / standing"),
        [
            (
                a.id,
                a.resource_id,
                china_date(a.submitted_at),
                _deadline(a),
                a.status.value,
                _standing(a),
            )
            for a in found
        ],
    )
