"""``bidui demo``: the whole product on one machine, in a minute, with nothing else running.

It plays both departments. As the provider (a public security bureau) it creates a node with keys,
a development PKI and a SQLite table of synthetic Luzhou residents, loads the match indexes and
starts the node on a free loopback port. As the requester (civil affairs) it compares a mix of
present, absent and invalid records in hashed and blinded mode through the SDK, over mutual TLS.
Then it shows what a compliance officer sees (metrics, the audit chain), stops the node, and leaves
everything in the directory for the reader to try the other commands on.
"""

from __future__ import annotations

import csv
import random
import tempfile
import unicodedata
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import click

from client_sdk import ComparisonClient, ComparisonResult, Credentials
from provider_node.audit.log import AuditUnavailableError
from provider_node.audit.operator import open_audit, record_index_load
from provider_node.config import load_config
from provider_node.resources.catalog import build_catalog
from provider_node.resources.keys import NodeKeys
from provider_node.resources.loader import load_resource
from provider_node.setup.bootstrap import init_node
from provider_node.setup.runtime import open_node, start_node
from provider_node.setup.sample_data import Resident, add_residents, synthetic_residents

PROVIDER = "luzhou-psb"
REQUESTER = "luzhou-civil-affairs"
PURPOSE = "demo: verify applicants' residence for minimum living allowance (最低生活保障) review"


def requester_records(
    present: Sequence[Resident], absent: Sequence[Resident], rng: random.Random
) -> list[tuple[dict[str, str], str]]:
    """What the requester brings: rows and, for the summary, what each row is meant to show."""
    rows: list[tuple[dict[str, str], str]] = []
    for id_number, name, _ in present[:6]:
        rows.append(({"id_number": id_number, "name": name}, "present"))
    # The same people written as clerks write them: full-width digits, lower-case x, spaces.
    id_number, name, _ = present[6]
    wide = unicodedata.normalize("NFKC", id_number).translate(
        {ord(d): 0xFF10 + int(d) for d in "0123456789"}
    )
    rows.append(({"id_number": wide, "name": f" {name} "}, "present, full-width digits"))
    for id_number, name, _ in present[7:9]:
        rows.append(({"id_number": id_number.lower(), "name": name}, "present"))
    for id_number, name, _ in absent[:5]:
        rows.append(({"id_number": id_number, "name": name}, "absent"))
    bad_check = present[9][0][:17] + ("0" if present[9][0][17] != "0" else "1")
    rows.append(({"id_number": bad_check, "name": present[9][1]}, "invalid: check digit"))
    rows.append(({"id_number": "51050219901301001X", "name": "李四"}, "invalid: no 13th month"))
    rows.append(({"id_number": "5105021990", "name": "王五"}, "invalid: too short"))
    rows.append(({"id_number": present[10][0], "name": ""}, "invalid: empty name"))
    rng.shuffle(rows)
    return rows


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to create the demo node (default: a new temporary directory).",
)
@click.option("--records", default=2000, show_default=True, help="Synthetic residents to load.")
@click.option("--seed", default=2017, show_default=True, help="Seed for the synthetic data.")
def demo(directory: Path | None, records: int, seed: int) -> None:
    """Run a provider node and compare records against it, end to end, on this machine.

    Creates DIR/node.toml, keys, certificates and a SQLite table of synthetic residents; loads
    the indexes; starts the node on a free localhost port; compares present, absent and invalid
    records in hashed and blinded mode through the SDK over mutual TLS; verifies the audit
    chain; stops the node. Exits 0 when every step worked.
    """
    if records < 20:
        raise click.BadParameter("at least 20 records", param_hint="--records")
    directory = Path(tempfile.mkdtemp(prefix="bidui-demo-")) if directory is None else directory
    if (directory / "node.toml").exists():
        raise click.ClickException(
            f"{directory} already holds a node; choose a new --dir (the demo never overwrites keys)"
        )
    step = _Steps()

    step("provider: create the node, its keys and a development PKI")
    init = init_node(directory, department=PROVIDER, clients=(REQUESTER,))
    residents = synthetic_residents(records + 10, seed)
    on_file, never_registered = residents[:records], residents[records:]
    add_residents(init.source_db, on_file)
    click.echo(f"    {records:,} synthetic Luzhou residents in {init.source_db.name}")

    step("provider: load the match indexes (the data stays in the source database)")
    config = load_config(init.config_path)
    keys = NodeKeys.load(config.keys.dir)
    try:
        audit = open_audit(config)
    except AuditUnavailableError as exc:
        raise click.ClickException(exc.detail) from None
    for resource in build_catalog(config).values():
        report = load_resource(resource, config, keys)
        record_index_load(audit, config, report)
        for index in report.indexes:
            click.echo(f"    {resource.id} / {index.key} / {index.mode}: {index.records:,} entries")

    step("provider: start the node on a free localhost port (mutual TLS)")
    started = start_node(open_node(config), listen="127.0.0.1:0", metrics_listen="127.0.0.1:0")
    try:
        click.echo(
            f"    gRPC on 127.0.0.1:{started.port}; "
            f"metrics on http://127.0.0.1:{started.metrics_port}/metrics"
        )
        _, client_cert, client_key = init.client_certs[0]
        credentials = Credentials.from_files(init.ca_cert, client_cert, client_key)
        rows = requester_records(on_file, never_registered, random.Random(seed))
        _write_requests(directory / "requests.csv", rows)
        with ComparisonClient(f"localhost:{started.port}", credentials) as client:
            for mode in ("hashed", "blinded"):
                step(f"requester: compare {len(rows)} records in {mode} mode")
                result = client.compare(
                    "residents",
                    [record for record, _ in rows],
                    key="id_number+name",
                    mode=mode,
                    purpose=PURPOSE,
                )
                _summarise(result, rows)
        metrics = _scrape(started.metrics_port)
    finally:
        started.stop(grace=2.0)

    step("compliance: metrics and the audit chain")
    for line in metrics:
        click.echo(f"    {line}")
    report_chain = audit.verify()
    if not report_chain.ok:
        raise click.ClickException(f"audit chain broken: {report_chain.reason}")
    click.echo(
        f"    audit chain OK: {report_chain.records_checked} records in {config.audit.database_url}"
    )
    click.echo(
        f"\nDone. Everything is in {directory}. Try next:\n"
        f"  bidui audit verify --config {init.config_path}\n"
        f"  bidui audit export --config {init.config_path} --format csv\n"
        f"  bidui provider serve --config {init.config_path}     # then, in another shell:\n"
        f"  bidui compare --input {directory / 'requests.csv'} --resource residents "
        f"--key id_number+name --purpose 'demo' --output {directory / 'results.csv'} "
        f"--target localhost:50051 --ca-cert {init.ca_cert} --cert {client_cert} "
        f"--key-file {client_key}"
    )


class _Steps:
    def __init__(self) -> None:
        self._number = 0

    def __call__(self, text: str) -> None:
        self._number += 1
        click.secho(f"[{self._number}] {text}", bold=True)


def _write_requests(path: Path, rows: Sequence[tuple[dict[str, str], str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id_number", "name", "note"])
        for record, note in rows:
            writer.writerow([record["id_number"], record["name"], note])


def _summarise(result: ComparisonResult, rows: Sequence[tuple[dict[str, str], str]]) -> None:
    click.echo(
        f"    matched {result.matched_count}, not matched {result.not_matched_count}, "
        f"invalid {result.error_count}  (audit records: {len(result.comparison_ids)})"
    )
    wrong = 0
    for outcome, (_record, note) in zip(result, rows, strict=True):
        expected = (
            "error"
            if note.startswith("invalid")
            else ("matched" if note.startswith("present") else "not_matched")
        )
        wrong += outcome.status != expected
    shown = [(o, r, n) for o, (r, n) in zip(result, rows, strict=True)][:6]
    for outcome, record, note in shown:
        detail = f" ({outcome.message})" if outcome.is_error else ""
        click.echo(f"      {_mask(record['id_number']):<20} {outcome.status:<12}{detail}  # {note}")
    if wrong:
        raise click.ClickException(f"{wrong} rows did not give the expected result")


def _mask(id_number: str) -> str:
    """Show a resident ID as clerks print it on screens: the middle hidden."""
    return id_number[:4] + "*" * max(len(id_number) - 8, 0) + id_number[-4:]


def _scrape(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    wanted = ("bidui_comparisons_total{", "bidui_comparison_matches_total{", "bidui_index_records{")
    return [line for line in text.splitlines() if line.startswith(wanted)]
