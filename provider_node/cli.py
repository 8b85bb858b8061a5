"""``bidui provider ...``: the node operator's commands.

``init`` sets up a node directory (configuration, keys, development PKI); ``load`` builds the match
indexes from the sources. ``serve`` lives with the server and is added to this group by
``bidui/cli.py`` (``provider.add_command(serve)``).

User mistakes end with one line on stderr and exit code 2; no command ever prints a secret.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import click

from provider_node import pki
from provider_node.audit import AuditEntry, AuditLog, AuditUnavailableError
from provider_node.config import DEPARTMENT_ID_RE, ConfigError, NodeConfig, load_config
from provider_node.keys import HMAC_MASTER_FILE, OPRF_SEED_FILE, KeyStoreError, NodeKeys
from provider_node.loader import LoaderError, LoadReport, count_source_rows, load_resource
from provider_node.resources import build_catalog
from provider_node.store import make_engine, migrate, session_factory

__all__ = ["InitResult", "init_node", "provider"]

DEFAULT_DEPARTMENT = "luzhou-psb"
DEFAULT_CLIENT = "luzhou-civil-affairs"

NODE_TOML_TEMPLATE = """\
# bidui provider node configuration (created by `bidui provider init`).
# Relative paths resolve against this file's folder. Any [node], [tls], [keys] or [audit] value
# can be overridden from the environment as BIDUI_<SECTION>_<KEY>, e.g. BIDUI_AUDIT_DATABASE_URL.

[node]
name = "{department} data service node"
department = "{department}"       # this node's department id
listen = "127.0.0.1:50051"          # gRPC with mutual TLS
metrics_listen = "127.0.0.1:9464"   # Prometheus /metrics
data_dir = "data"                   # match indexes live in data_dir/indexes
max_batch_items = 100000            # items per request (1 to 1000000)
max_message_bytes = 16777216
blinded_session_seconds = 300       # time between the two steps of a blinded comparison
max_items_per_minute = 0            # per requesting department (article 34); 0: no limit

[tls]
ca_cert = "pki/ca.pem"              # client certificates must chain to this CA
server_cert = "pki/node.pem"
server_key = "pki/node.key"

[keys]
dir = "keys"                        # oprf_seed, hmac_master: mode 0600; back up, never share

[audit]
database_url = "sqlite:///audit.db" # or postgresql+psycopg://user@host/db
retention_days = 730                # article 35: at least 730 days

# One [[resources]] table per catalogued resource (articles 7-10).
[[resources]]
id = "residents"
name = "Registered residents (example)"
owner_department = "{department}"
category = "basic"                  # basic | thematic | departmental
sharing_type = "unconditional"      # unconditional | conditional | not_shared (article 24)
update_period = "P1D"               # ISO 8601 duration
usage_conditions = "Comparison only: the node answers match / no-match, never the data."
modes = ["hashed", "blinded"]
expose_record_count = false         # publish the record count in the catalog?
key_version = 1                     # raise to rotate the keys, then `bidui provider load`
fields = {{ id_number = "cn_resident_id", name = "person_name", birth_date = "date" }}
keys = {{ "id_number" = ["id_number"], "id_number+name" = ["id_number", "name"] }}

# The source is read only by `bidui provider load`; its values are never copied anywhere.
# Any SQLAlchemy URL plus a query returning the declared fields, or instead a CSV file with a
# header row:  csv = "residents.csv"
[resources.source]
url = "sqlite:///source.db"
query = "SELECT id_number, name, birth_date FROM residents"
"""

SOURCE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS residents ("
    "id_number TEXT NOT NULL, name TEXT NOT NULL, birth_date TEXT)"
)


class UserError(click.ClickException):
    """One line on stderr, exit code 2."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _fail(message: str) -> NoReturn:
    raise UserError(message)


@dataclass(frozen=True)
class InitResult:
    directory: Path
    config_path: Path
    keys_dir: Path
    ca_cert: Path
    server_cert: Path
    client_certs: tuple[tuple[str, Path, Path], ...]
    source_db: Path


def init_node(
    directory: Path,
    *,
    department: str = DEFAULT_DEPARTMENT,
    clients: Sequence[str] = (DEFAULT_CLIENT,),
    force: bool = False,
) -> InitResult:
    """Create ``directory/node.toml``, the keys and the development PKI (the work of ``init``).

    Refuses (``KeyStoreError``) when the directory already holds keys or a configuration, unless
    ``force``. The source database ``source.db`` gets an empty ``residents`` table when absent;
    existing data in it is left alone.
    """
    for name in (department, *clients):
        if not DEPARTMENT_ID_RE.fullmatch(name):
            raise ValueError(f"{name!r} is not a department id (1-64 of a-z, 0-9, _ and -)")
    directory = directory.absolute()
    config_path = directory / "node.toml"
    keys_dir = directory / "keys"
    pki_dir = directory / "pki"
    if not force:
        existing = [
            path
            for path in (
                config_path,
                keys_dir / OPRF_SEED_FILE,
                keys_dir / HMAC_MASTER_FILE,
                pki_dir / "ca.key",
            )
            if path.exists()
        ]
        if existing:
            raise KeyStoreError(
                f"{directory} already holds a node ({', '.join(p.name for p in existing)}); "
                "refusing to overwrite its keys (use --force to replace them)"
            )
    directory.mkdir(parents=True, exist_ok=True)
    NodeKeys.generate(keys_dir, overwrite=force)
    ca = pki.create_ca(pki_dir, f"bidui development CA ({department})", overwrite=force)
    server = pki.issue_server_cert(ca, pki_dir, ("localhost", "127.0.0.1"), overwrite=force)
    issued = []
    for client in dict.fromkeys(clients):
        cert = pki.issue_client_cert(ca, pki_dir / "clients", client, overwrite=force)
        issued.append((client, cert.cert_path, cert.key_path))
    temporary = config_path.with_name(".node.toml.tmp")
    temporary.write_text(NODE_TOML_TEMPLATE.format(department=department), encoding="utf-8")
    temporary.replace(config_path)
    source_db = directory / "source.db"
    with sqlite3.connect(source_db) as connection:
        connection.execute(SOURCE_SCHEMA)
    connection.close()
    return InitResult(
        directory=directory,
        config_path=config_path,
        keys_dir=keys_dir,
        ca_cert=ca.cert_path,
        server_cert=server.cert_path,
        client_certs=tuple(issued),
        source_db=source_db,
    )


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
    default=DEFAULT_DEPARTMENT,
    show_default=True,
    help="This node's department id.",
)
@click.option(
    "--client",
    "clients",
    multiple=True,
    metavar="DEPT",
    help=f"Issue a client certificate for this requesting department (repeatable; "
    f"default {DEFAULT_CLIENT}).",
)
@click.option("--force", is_flag=True, help="Replace existing keys and certificates.")
def init(directory: Path, department: str, clients: tuple[str, ...], force: bool) -> None:
    """Create a node: an example node.toml, the node's OPRF and HMAC keys (mode 0600) and a
    development PKI (CA, server certificate for localhost, client certificates)."""
    try:
        result = init_node(
            directory, department=department, clients=clients or (DEFAULT_CLIENT,), force=force
        )
    except (KeyStoreError, ValueError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot create the node in {directory}: {exc.strerror or exc}")
    click.echo(f"Created a bidui provider node in {result.directory}")
    click.echo(f"  configuration       {result.config_path}")
    click.echo(f"  keys (0600)         {result.keys_dir}/{OPRF_SEED_FILE}, {HMAC_MASTER_FILE}")
    click.echo(f"  CA certificate      {result.ca_cert}  (give it to requesting departments)")
    click.echo(f"  server certificate  {result.server_cert}")
    for client, cert, key in result.client_certs:
        click.echo(f"  client {client}: {cert} + {key}  (hand over securely)")
    click.echo(f"  example source      {result.source_db} (table residents)")
    click.echo("Next:")
    click.echo(f"  1. put records in {result.source_db} or edit the [[resources]] in node.toml")
    click.echo(f"  2. bidui provider load --config {result.config_path}")
    click.echo(f"  3. bidui provider serve --config {result.config_path}")


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
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The node's configuration file (node.toml).",
)
@click.option(
    "--resource",
    "resource_ids",
    multiple=True,
    metavar="ID",
    help="Load only this resource (repeatable; default: every resource).",
)
def load(config_path: Path, resource_ids: tuple[str, ...]) -> None:
    """Build the hashed and blinded match indexes of the node's resources from their sources.

    Source values are read in chunks and never written anywhere; invalid rows are counted by
    field and reason with their row numbers, and left out of the indexes."""
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
    audit = open_audit(config)
    for resource_id in resource_ids or tuple(catalog):
        resource = catalog[resource_id]
        total = count_source_rows(resource)
        try:
            with click.progressbar(
                length=total or 0,
                label=f"loading {resource_id}",
                file=sys.stderr,
            ) as bar:
                report = load_resource(resource, config, keys, progress=bar.update)
        except LoaderError as exc:
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


def record_index_load(audit: AuditLog, config: NodeConfig, report: LoadReport) -> None:
    """Article 35: updating a shared resource is a governance action, audited like the rest."""
    audit.append(
        AuditEntry(
            action="index_load",
            requester=config.node.department,
            resource_id=report.resource_id,
            item_count=report.source_rows,
            outcome="answered",
            status_code="OK",
            reason=(
                f"key version {report.key_version}: {len(report.indexes)} indexes, "
                f"{report.invalid_rows} invalid rows"
            ),
        )
    )


def open_audit(config: NodeConfig) -> AuditLog:
    try:
        engine = make_engine(config.audit.database_url)
        migrate(engine)
    except Exception as exc:  # the store's own errors: one line, not a traceback
        _fail(f"cannot open the audit log: {str(exc).splitlines()[0]}")
    return AuditLog(session_factory(engine), retention_days=config.audit.retention_days)
