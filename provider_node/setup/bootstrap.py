"""Set up a node folder: create whatever part of it is missing, and never replace what is there.

```
DIR/node.toml                 example configuration (0600: its database URL may hold a password)
DIR/keys/oprf_seed, hmac_master   the node's master secrets (0600; see keys.py)
DIR/pki/ca.pem, ca.key        development CA          } paths as node.toml's [tls] names them,
DIR/pki/node.pem, node.key    server certificate      } [keys] as its keys.dir
DIR/pki/clients/<dept>.pem/.key   one client certificate per requesting department
DIR/source.db                 example source: an empty residents table (sample_data.py)
```

Running ``init`` again is always safe: an edited ``node.toml`` is kept byte for byte, and the keys
and the CA are kept, so no index, no hashed-mode key a department holds and no client certificate
stops working. Replacing any of them is a separate action that says what it invalidates
(``rotation.py``). When a missing part cannot be created without contradicting the parts that
exist — a server certificate without the CA key that would sign it, a CA certificate missing
while certificates it issued remain — ``InitError`` says so before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from provider_node.config import DEPARTMENT_ID_RE, NodeConfig, load_config
from provider_node.identity import pki
from provider_node.resources.keys import (
    HMAC_MASTER_FILE,
    SECRET_FILES,
    create_missing_keys,
    write_secret_file,
)
from provider_node.setup.sample_data import create_sample_source

__all__ = [
    "DEFAULT_CLIENT",
    "DEFAULT_DEPARTMENT",
    "NODE_TOML_TEMPLATE",
    "InitError",
    "InitResult",
    "init_node",
]

DEFAULT_DEPARTMENT = "luzhou-psb"
DEFAULT_CLIENT = "luzhou-civil-affairs"
SERVER_HOSTNAMES = ("localhost", "127.0.0.1")

NODE_TOML_TEMPLATE = """\
# bidui provider node configuration (created by `bidui provider init`).
# Relative paths resolve against this file's folder. Any [node], [transport], [tls], [keys] or
# [audit] value can be overridden from the environment as BIDUI_<SECTION>_<KEY>, e.g.
# BIDUI_AUDIT_DATABASE_URL. Commented-out lines show the default.

[node]
name = "{department} data service node"
department = "{department}"       # this node's department id
listen = "127.0.0.1:50051"          # gRPC with mutual TLS
metrics_listen = "127.0.0.1:9464"   # Prometheus /metrics
data_dir = "data"                   # match indexes live in data_dir/indexes
max_batch_items = 100000            # items per request (1 to 1000000)
max_message_bytes = 16777216
blinded_session_seconds = 300       # time between the two steps of a blinded comparison
# max_items_per_minute = 240000     # blinded, per requesting department (article 34); 0: no limit
# max_hashed_items_per_minute = 12000000
# max_open_sessions = 1024          # blinded comparisons awaiting their second step, in all
# max_open_sessions_per_department = 16

# The gRPC server's processes, threads and connections (threads and RPCs per worker process).
# [transport]
# workers = 1                       # processes on the one port; `serve --workers N` overrides
# max_workers = 16
# max_concurrent_rpcs = 1024        # RPCs at once; more are refused RESOURCE_EXHAUSTED
# handshake_timeout_seconds = 5
# max_connection_idle_seconds = 300
# max_connection_age_seconds = 3600 # then the client reconnects: its certificate is checked again

[tls]
ca_cert = "pki/ca.pem"              # client certificates must chain to this CA
server_cert = "pki/node.pem"
server_key = "pki/node.key"
# ca_key = "pki/ca.key"             # for `bidui provider pki sign`; default: ca.key beside ca_cert

[keys]
dir = "keys"                        # oprf_seed, hmac_master: mode 0600; back up, never share

[audit]
database_url = "sqlite:///audit.db" # or postgresql+psycopg://user@host/db
retention_days = 730                # article 35: at least 730 days

# Working days (deadlines of articles 25 and 26) come from the chinese-calendar package, which
# knows the years announced before its release; /metrics says when that runs out
# (bidui_working_day_calendar_end_timestamp_seconds). Once the State Council announces the next
# year, copy its notice here (or update the package) and restart:
#   [[calendar.years]]
#   year = 2027
#   source = "国务院办公厅关于2027年部分节假日安排的通知 (国办发明电〔2026〕N号)"
#   holidays = [2027-01-01, …]      # every day off, as TOML dates
#   workdays = [2027-02-07, …]      # weekend make-up working days (调休)

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
# Blinded mode's RFC 9497 modes: "oprf" (no proof, the default) and/or "voprf" (a proof that the
# published key was used: for requesters who keep outputs or compare them across nodes).
oprf_modes = ["oprf"]
expose_record_count = false         # publish the record count in the catalog?
key_version = 1                     # raise to rotate the keys, then `bidui provider load`
fields = {{ id_number = "cn_resident_id", name = "person_name", birth_date = "date" }}
keys = {{ "id_number" = ["id_number"], "id_number+name" = ["id_number", "name"] }}
# What comparisons may answer, each its own permission: match (bits), verify (核验: not found /
# consistent / inconsistent per record) and count (how many matched, nothing per record).
# Verification names the fields that can be verified against each key, e.g.
#   answers = ["match", "verify", "count"]
#   verify = {{ "id_number" = ["name", "birth_date"] }}
answers = ["match"]

# The source is read only by `bidui provider load`; its values are never copied anywhere.
# Any SQLAlchemy URL plus a query returning the declared fields, or instead a CSV file with a
# header row:  csv = "residents.csv"
[resources.source]
url = "sqlite:///source.db"
query = "SELECT id_number, name, birth_date FROM residents"
"""


class InitError(Exception):
    """A missing part cannot be created without replacing or contradicting an existing one."""


@dataclass(frozen=True)
class InitResult:
    directory: Path
    config_path: Path
    keys_dir: Path
    ca_cert: Path
    server_cert: Path
    #: (department, certificate, key) of each client asked for, whether created or kept.
    client_certs: tuple[tuple[str, Path, Path], ...]
    source_db: Path
    created: tuple[Path, ...]
    kept: tuple[Path, ...]
    #: What the operator must do because of what was created (e.g. a lost key recreated).
    warnings: tuple[str, ...]


def init_node(
    directory: Path,
    *,
    department: str | None = None,
    clients: Sequence[str] | None = None,
) -> InitResult:
    """Create whatever is missing of the node in ``directory``; never replace an existing file.

    ``department`` names a new node (default ``DEFAULT_DEPARTMENT``); for an existing
    ``node.toml`` it must agree with it. ``clients`` default to ``DEFAULT_CLIENT`` for a new
    node and to none for an existing one. Raises ``InitError``, ``ConfigError`` (an existing
    ``node.toml`` that does not load) or ``ValueError`` (a bad department id) before it creates
    any key or certificate.
    """
    for name in (department or DEFAULT_DEPARTMENT, *(clients or ())):
        if not DEPARTMENT_ID_RE.fullmatch(name):
            raise ValueError(f"{name!r} is not a department id (1-64 of a-z, 0-9, _ and -)")
    directory = directory.absolute()
    directory.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []
    kept: list[Path] = []
    config_path = directory / "node.toml"
    new_node = not config_path.exists()
    if new_node:
        text = NODE_TOML_TEMPLATE.format(department=department or DEFAULT_DEPARTMENT)
        write_secret_file(config_path, text.encode("utf-8"))
        created.append(config_path)
    else:
        kept.append(config_path)
    config = load_config(config_path)
    if department is not None and department != config.node.department:
        raise InitError(
            f"{config_path} is the node of {config.node.department!r}, not {department!r}: "
            "edit node.toml to change its department"
        )
    if clients is None:
        clients = (DEFAULT_CLIENT,) if new_node else ()
    pki_plan = _PkiPlan(config, tuple(dict.fromkeys(clients)))  # raises before anything is issued

    new_keys = create_missing_keys(config.keys.dir)
    created += new_keys
    kept += [config.keys.dir / n for n in SECRET_FILES if config.keys.dir / n not in new_keys]
    warnings = [] if new_node else [_lost_key_warning(path) for path in new_keys]
    issued, kept_pki = pki_plan.carry_out()
    created += issued
    kept += kept_pki

    source_db = directory / "source.db"
    if source_db.exists():
        kept.append(source_db)
    else:
        create_sample_source(source_db)
        created.append(source_db)
    return InitResult(
        directory=directory,
        config_path=config_path,
        keys_dir=config.keys.dir,
        ca_cert=config.tls.ca_cert,
        server_cert=config.tls.server_cert,
        client_certs=pki_plan.client_pairs,
        source_db=source_db,
        created=tuple(created),
        kept=tuple(kept),
        warnings=tuple(warnings),
    )


def _lost_key_warning(path: Path) -> str:
    # Same key version, other key: a requester still holding the old one would be answered
    # "not matched" (hashed) or fail the proof (VOPRF) instead of being told to fetch the new one.
    held = "hashed-mode keys" if path.name == HMAC_MASTER_FILE else "OPRF public keys"
    return (
        f"{path.name} was missing and is new: indexes built under the old one no longer load, "
        f"and the {held} requesters hold no longer fit; raise each resource's key_version in "
        "node.toml, then run `bidui provider load`"
    )


class _PkiPlan:
    """Which certificates ``init`` will issue, checked against the ones that exist.

    A certificate and its key are one part: both present is kept, both absent is issued, one
    without the other is refused (issuing would replace the one that exists).
    """

    def __init__(self, config: NodeConfig, clients: Sequence[str]) -> None:
        tls = config.tls
        self.department = config.node.department
        self.ca_dir = tls.ca_cert.parent
        self.ca_key = self.ca_dir / "ca.key"
        self.ca_pair = (tls.ca_cert, self.ca_key)
        self.server_pair = (tls.server_cert, tls.server_key)
        clients_dir = self.ca_dir / "clients"
        self.client_pairs = tuple(
            (name, clients_dir / f"{name}.pem", clients_dir / f"{name}.key") for name in clients
        )
        issued_pairs = [self.server_pair, *((cert, key) for _, cert, key in self.client_pairs)]
        self.new_ca = not tls.ca_cert.exists()
        # pki.py writes and reads a CA as ca.pem + ca.key in one folder; a key kept elsewhere
        # (tls.ca_key) is the operator's own CA, which init neither creates nor signs with.
        own_ca = tls.ca_key is not None and tls.ca_key != self.ca_key
        if self.new_ca:
            self._check_ca_can_be_created(issued_pairs, own_ca)
        self.missing = [pair for pair in issued_pairs if _missing(pair)]
        beside = tls.server_key == tls.server_cert.with_suffix(".key")
        if not beside and self.server_pair in self.missing:
            raise InitError(
                f"tls.server_cert {tls.server_cert} does not exist and init writes a server key "
                f"only beside it ({tls.server_cert.with_suffix('.key').name}); issue it with your "
                "CA or point tls.server_key there"
            )
        if (
            self.missing
            and not self.new_ca
            and (own_ca or not (tls.ca_cert.name == "ca.pem" and self.ca_key.exists()))
        ):
            raise InitError(
                f"{self.missing[0][0]} is missing and the key of the CA that would sign it "
                f"({self.ca_key}) is not here: issue it with the CA of {tls.ca_cert}"
            )

    def _check_ca_can_be_created(
        self, issued_pairs: Sequence[tuple[Path, Path]], own_ca: bool
    ) -> None:
        ca_cert = self.ca_pair[0]
        if ca_cert.name != "ca.pem" or own_ca:
            raise InitError(
                f"tls.ca_cert {ca_cert} does not exist; init creates a development CA only as "
                "ca.pem with ca.key beside it: put your CA's certificate there"
            )
        orphans = [p for pair in issued_pairs for p in pair if p.exists()]
        if self.ca_key.exists():
            orphans.insert(0, self.ca_key)
        if orphans:
            raise InitError(
                f"{ca_cert} is missing but {orphans[0]} is there; a new CA would leave it "
                "unusable: restore ca.pem from the node's backup, or replace the CA with "
                "`bidui provider pki rotate-ca`"
            )

    def carry_out(self) -> tuple[list[Path], list[Path]]:
        """Create the CA and the missing certificates; return (created, kept) files."""
        created: list[Path] = []
        kept: list[Path] = []
        ca = None
        if self.new_ca:
            ca = pki.create_ca(self.ca_dir, f"bidui development CA ({self.department})")
            created += self.ca_pair
        else:
            kept += [p for p in self.ca_pair if p.exists()]
            if self.missing:
                ca = pki.load_ca(self.ca_dir)
        if ca is not None and self.server_pair in self.missing:
            cert = self.server_pair[0]
            pki.issue_server_cert(ca, cert.parent, SERVER_HOSTNAMES, name=cert.stem)
        for department, cert, key in self.client_pairs:
            if ca is not None and (cert, key) in self.missing:
                pki.issue_client_cert(ca, cert.parent, department)
        for pair in (self.server_pair, *((c, k) for _, c, k in self.client_pairs)):
            (created if pair in self.missing else kept).extend(pair)
        return created, kept


def _missing(pair: tuple[Path, Path]) -> bool:
    cert, key = pair
    if cert.exists() != key.exists():
        present, absent = (cert, key) if cert.exists() else (key, cert)
        raise InitError(
            f"{present} is there but {absent} is not; issuing a new pair would replace "
            f"{present.name}: restore {absent.name}, or move {present.name} away and run init again"
        )
    return not cert.exists()
