"""``bidui provider ...``: the node operator's commands.

``init`` sets up a node directory (configuration, keys, development PKI); ``load`` builds the match
indexes from the sources. ``serve`` is its own module, added to this group by ``main.py``
(``provider.add_command(serve)``).

User mistakes end with one line on stderr and exit code 2; no command ever prints a secret.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import click

from bidui_cli.errors import UserError
from bidui_cli.errors import fail as _fail
from bidui_cli.options import config_option
from comparator.oprf import set_workers
from provider_node.audit.log import AuditLog, AuditUnavailableError
from provider_node.audit.operator import open_audit, record_index_load
from provider_node.config import ConfigError, NodeConfig, load_config
from provider_node.resources.catalog import Resource, build_catalog
from provider_node.resources.distributed_load import CONNECT_TIMEOUT, ClusterError, cluster_runner
from provider_node.resources.keys import KeyStoreError, NodeKeys
from provider_node.resources.loader import ChunkRunner, LoadReport, load_resource, run_locally
from provider_node.resources.source import LoaderError, count_source_rows
from provider_node.setup.bootstrap import (
    DEFAULT_CLIENT,
    DEFAULT_DEPARTMENT,
    InitError,
    InitResult,
    init_node,
)

__all__ = ["provider"]


@click.group()
def provider() -> None:
    """Run a provider's data service node: set it up, load its indexes, serve comparisons."""


@provider.command()
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for node.toml, keys/, pki/ and data/ (created if absent).",
)
@click.option(
    "--department",
    default=None,
    help=f"This node's department id, for a new node (default {DEFAULT_DEPARTMENT}); "
    "an existing node.toml's must match.",
)
@click.option(
    "--client",
    "clients",
    multiple=True,
    metavar="DEPT",
    help=f"Issue a client certificate for this requesting department unless it has one "
    f"(repeatable; a new node's default: {DEFAULT_CLIENT}).",
)
def init(directory: Path, department: str | None, clients: tuple[str, ...]) -> None:
    """Create what is missing of a node: an example node.toml, the node's OPRF and HMAC keys
    (mode 0600), a development PKI (CA, server certificate for localhost, client certificates)
    and an example source.db.

    Never replaces a file: running it again keeps an edited node.toml, the keys and the CA, and
    reports what it kept. Replacing keys or the CA is `bidui provider keys rotate` or
    `bidui provider pki rotate-ca`, which say what they invalidate."""
    try:
        result = init_node(directory, department=department, clients=clients or None)
    except (InitError, KeyStoreError, ValueError) as exc:
        _fail(str(exc))
    except ConfigError as exc:
        _fail("\n".join(exc.problems))
    except OSError as exc:
        _fail(f"cannot create the node in {directory}: {exc.strerror or exc}")
    _print_init(result)


def _print_init(result: InitResult) -> None:
    verb = "Created" if result.config_path in result.created else "Completed"
    click.echo(f"{verb} the bidui provider node in {result.directory}")
    roles = {result.ca_cert: "  (give it to requesting departments)"}
    roles.update({cert: "  (hand over securely)" for _, cert, _ in result.client_certs})
    for title, paths in (("created", result.created), ("kept", result.kept)):
        for path in paths:
            click.echo(f"  {title:<8} {_shown(path, result.directory)}{roles.get(path, '')}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo("Next:")
    click.echo(f"  1. put records in {result.source_db} or edit the [[resources]] in node.toml")
    click.echo(f"  2. bidui provider load --config {result.config_path}")
    click.echo(f"  3. bidui provider serve --config {result.config_path}")


def _shown(path: Path, directory: Path) -> str:
    return str(path.relative_to(directory)) if path.is_relative_to(directory) else str(path)


def _print_report(report: LoadReport) -> None:
    if report.skipped_reason:
        click.echo(f"{report.resource_id}: {report.skipped_reason}")
        return
    click.echo(
        f"{report.resource_id}: {report.source_rows} source rows, key version "
        f"{report.key_version}, built {report.built_at.isoformat(timespec='seconds')} "
        f"in {report.seconds:.1f} s"
    )
    for index in report.indexes:
        invalid = report.invalid[index.key].count
        click.echo(
            f"  {index.key:<20} {index.mode:<8} {index.records:>10} records  "
            f"{invalid:>8} invalid rows"
        )
    for key, rows in report.invalid.items():
        for (field, reason), count in sorted(rows.by_reason.items()):
            sample = ", ".join(str(row) for row in rows.sample_rows[(field, reason)])
            more = ", ..." if count > len(rows.sample_rows[(field, reason)]) else ""
            click.echo(
                f"  invalid for {key}: {field}: {reason}: {count} rows (rows {sample}{more})"
            )


@provider.command()
@config_option()
@click.option(
    "--resource",
    "resource_ids",
    multiple=True,
    metavar="ID",
    help="Load only this resource (repeatable; default: every resource).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Threads each chunk's blinded-mode evaluation is split across on this machine "
    "(default: BIDUI_OPRF_WORKERS, or every local core).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Do the per-chunk work on the Dask cluster of this scheduler (tcp://host:8786, "
    'tls://...; needs pip install "bidui[cluster]"); this machine reads the source and writes '
    "the indexes.",
)
@click.option(
    "--scheduler-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=CONNECT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long to try reaching the scheduler, and then to wait for a worker.",
)
def load(
    config_path: Path,
    resource_ids: tuple[str, ...],
    workers: int | None,
    scheduler: str | None,
    scheduler_timeout: float,
) -> None:
    """Build the hashed and blinded match indexes of the node's resources from their sources.

    Source values are read in chunks and never written anywhere; invalid rows are counted by
    field and reason with their row numbers, and left out of the indexes. With --scheduler, the
    chunks are canonicalised, tagged and evaluated by the cluster's workers, which send back only
    the 32-byte index entries: the indexes are the same as a local load's."""
    if scheduler is not None and workers is not None:
        _fail(
            "--workers sets this machine's threads; with --scheduler the work is done by the "
            "cluster's `dask worker` processes (their --nthreads)"
        )
    try:
        config = load_config(config_path)
        keys = NodeKeys.load(config.keys.dir)
    except (ConfigError, KeyStoreError) as exc:
        _fail(str(exc))
    catalog = build_catalog(config)
    unknown = [rid for rid in resource_ids if rid not in catalog]
    if unknown:
        _fail(
            f"{config.path}: no resource {', '.join(map(repr, unknown))} "
            f"(resources: {', '.join(catalog) or 'none'})"
        )
    if not catalog:
        _fail(f"{config.path}: declares no [[resources]] to load")
    try:
        audit = open_audit(config)
    except AuditUnavailableError as exc:
        _fail(exc.detail)
    with contextlib.ExitStack() as stack:
        run_chunks: ChunkRunner = run_locally
        if scheduler is not None:
            try:
                run_chunks = stack.enter_context(
                    cluster_runner(scheduler, timeout=scheduler_timeout)
                )
            except ClusterError as exc:
                _fail(str(exc))
        elif workers is not None or not os.environ.get("BIDUI_OPRF_WORKERS"):
            set_workers(workers or os.cpu_count() or 1)
        for resource_id in resource_ids or tuple(catalog):
            _load_one(catalog[resource_id], config, keys, audit, run_chunks)


def _load_one(
    resource: Resource,
    config: NodeConfig,
    keys: NodeKeys,
    audit: AuditLog,
    run_chunks: ChunkRunner,
) -> None:
    resource_id = resource.id
    total = count_source_rows(resource)
    try:
        with click.progressbar(
            length=total or 0,
            label=f"loading {resource_id}",
            file=sys.stderr,
        ) as bar:
            report = load_resource(
                resource, config, keys, progress=bar.update, run_chunks=run_chunks
            )
    except LoaderError as exc:  # ClusterError too: the cluster failed on some rows
        _fail(str(exc))
    except OSError as exc:
        # Not the operator's input: the machine (disk full, permissions on data_dir).
        raise UserError(f"cannot write the indexes of {resource_id!r}: {exc}") from None
    _print_report(report)
    try:
        record_index_load(audit, config, report)
    except AuditUnavailableError as exc:
        _fail(
            f"the indexes of {resource_id!r} were built, but the audit log refused the "
            f"record of it: {exc}"
        )
