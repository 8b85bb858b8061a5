"""Write docs/configuration.md, the reference of every node.toml key, from the pydantic models.

    python scripts/gen_config_reference.py           # rewrite docs/configuration.md
    python scripts/gen_config_reference.py --check   # exit 1 if it is stale (tests/docs runs it)

The models are the source: ``provider_node.config.models.NodeConfig`` and the section models it
contains (``[node]``, ``[transport]``, ``[tls]``, ``[keys]``, ``[audit]``, ``[calendar]`` with
``[[calendar.years]]``, ``[[resources]]`` with its ``source`` table), walked through
``model_fields``. For each key: its type (from the annotation and the validators pydantic keeps in
the field's metadata: ranges, patterns, paths, addresses, database URLs, durations), its default,
and a description made of, in this order, ``GUIDE`` below (for keys whose code says nothing of its
own), the comments written above the key and beside it in the model's source, its attribute
docstring if it has one, and the ``Field(description=...)``. A key that ``GUIDE`` names but the
models no longer have stops the generator, so the reference cannot silently drift.
"""

from __future__ import annotations

import argparse
import ast
import datetime as _dt
import enum
import inspect
import io
import re
import sys
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python scripts/gen_config_reference.py` from anywhere
    sys.path.insert(0, str(ROOT))

from pydantic import BaseModel  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402

from provider_node.config.models import SECTIONS, NodeConfig  # noqa: E402

OUTPUT = ROOT / "docs" / "configuration.md"

# What the code does not say beside the key itself, written from what the code does with it.
GUIDE: dict[str, str] = {
    "node.department": "This node's department id: the providing department (提供部門). The owner "
    "of every resource unless the resource says otherwise, and the name governance decisions "
    "are recorded under unless `--operator NAME` is given.",
    "node.name": "The node's name, shown when `serve` starts.",
    "node.max_items_per_minute": "Items one department may send in blinded comparisons per "
    "minute, counted in the database (shared by every node process, kept across restarts); a "
    "request that does not fit is refused whole, `RESOURCE_EXHAUSTED`.",
    "node.max_hashed_items_per_minute": "Items one department may send in hashed comparisons per "
    "minute, counted like `max_items_per_minute`; 0: no limit.",
    "transport.handshake_timeout_seconds": "A TLS handshake must finish within this many "
    "seconds, or the connection is closed.",
    "transport.max_connection_idle_seconds": "Idle connections are closed after this many seconds.",
    "node.listen": "Where the gRPC server (mutual TLS) listens. With `[transport] workers` above "
    "1, every worker listens on this one port (SO_REUSEPORT).",
    "node.metrics_listen": "Where `/metrics` (Prometheus text format) is served. With N workers, "
    "worker i serves on this port + i.",
    "node.metrics_expose": "Must be `true` for `metrics_listen` to be an address beyond this "
    "machine (anything but 127.0.0.1, ::1, localhost); the configuration is refused otherwise.",
    "node.metrics_tls": "Serve `/metrics` over TLS, requiring a client certificate from the "
    "node's CA.",
    "node.data_dir": "The node's data folder: the match indexes (`data_dir/indexes/`) and the "
    "signed checkpoints (`data_dir/audit-checkpoints.jsonl`).",
    "node.max_batch_items": "Most items (records) one request may carry; a larger request is "
    "refused. The SDK splits larger inputs into requests of its own `max_batch`.",
    "node.max_message_bytes": "Largest gRPC message the node receives or sends, in bytes.",
    "node.blinded_session_seconds": "How long a blinded comparison stays open between its two "
    "steps (`BlindEvaluate`, then the answer's RPC); then it is audited as `abandoned`.",
    "node.max_open_sessions_per_department": "Open blinded comparisons one department may hold "
    "at once (per worker process). Must not exceed `max_open_sessions`.",
    "tls.ca_cert": "The CA certificate client certificates must chain to (sent to departments "
    "as `ca.pem`).",
    "tls.server_cert": "The node's server certificate.",
    "tls.server_key": "The server certificate's private key.",
    "keys.dir": "The node's secrets: `oprf_seed`, `hmac_master` (the master secrets every "
    "resource's keys derive from) and `checkpoint_ed25519` (signs the audit checkpoints); mode "
    "0600, never logged.",
    "audit.database_url": "The node's database: the audit log, grants, applications, "
    "discrepancy reports, certificates and quotas. Any SQLAlchemy URL; for PostgreSQL "
    '`postgresql+psycopg://...` (`pip install ".[postgres]"`). The schema is created and '
    "migrated (Alembic) at start. An in-memory SQLite database is refused.",
    "audit.retention_days": "How long audit records are kept. Article 35: never less than 730.",
    "audit.connect_timeout_seconds": "Longest wait for a new database connection.",
    "audit.pool_timeout_seconds": "Longest wait for a free connection from the pool.",
    "audit.lock_timeout_seconds": "Longest wait for a row or table lock.",
    "audit.statement_timeout_seconds": "Longest statement on the request path (PostgreSQL).",
    "audit.sqlite_busy_timeout_seconds": "SQLite's busy timeout: longest wait for the database "
    "file's write lock.",
    "audit.request_deadline_seconds": "Longest a request waits on the store; then it is answered "
    "`UNAVAILABLE` and nothing else.",
    "calendar.years": "Working-day years beyond those the `chinese-calendar` package knows, "
    "copied from the State Council's notice. They must follow the package's last year without a "
    "gap; a year the package knows is left to the package.",
    "calendar.years.year": "The year of the notice.",
    "calendar.years.source": "The notice the days are copied from (its title and number).",
    "calendar.years.holidays": "Every day off in that year (TOML dates).",
    "calendar.years.workdays": "Weekend make-up working days (调休) of that year (TOML dates).",
    "resources.id": "The resource's id: in the catalog, in requests, in index file names.",
    "resources.name": "The resource's name in the catalog (article 8).",
    "resources.owner_department": "The department that provides the resource.",
    "resources.category": "The catalog category (articles 7-10).",
    "resources.sharing_type": "Article 24: `unconditional` (every identified department), "
    "`conditional` (only under a grant: departments apply, the operator decides), `not_shared` "
    "(catalogued, never compared).",
    "resources.update_period": "How often the source is refreshed, as published in the catalog.",
    "resources.usage_conditions": "Conditions of use, as published in the catalog.",
    "resources.modes": "The comparison modes offered: `hashed` (HMAC-SHA-256 tags under a key "
    "the node gives to authorised departments) and `blinded` (RFC 9497).",
    "resources.expose_record_count": "Publish the number of records in the catalog.",
    "resources.key_version": "The version of the resource's keys. Raise it, run `bidui provider "
    "load` and restart `serve` to rotate this resource's keys; requests under the old version "
    "are refused `FAILED_PRECONDITION`.",
    "resources.fields": "The resource's fields and their types; each value is canonicalised by "
    "its type before it is hashed or blinded.",
    "resources.keys": "The comparison keys: each a name and the fields it combines "
    '(e.g. `id_number_name = ["id_number", "name"]`); `load` builds one index per key and mode.',
    "resources.verify": "`load` builds one more index per (key, field) and mode. Needed, and "
    'only allowed, when `answers` lists `"verify"`.',
    "resources.source": "Where `bidui provider load` reads the records. Source values are never "
    "copied anywhere but into the match indexes, as tags.",
    "resources.source.url": "Any SQLAlchemy URL of the source database (with `query`).",
    "resources.source.query": "The SQL query whose columns are the resource's fields.",
    "resources.source.csv": "A CSV file with a header row naming the fields (instead of "
    "`url` + `query`).",
}
# Comments in the models that speak to the code's reader, not to the operator.
CODE_NOTES = {"resources.fields", "resources.owner_department", "audit.database_url"}
# Defaults the models fill in from elsewhere (a validator), as the operator should read them.
DEFAULTS: dict[str, str] = {
    "node.name": "`[node] department`",
    "tls.ca_key": "`ca.key` beside `ca_cert` if that file exists, else none",
    "resources.owner_department": "`[node] department`",
}
# Value types told by the validators pydantic keeps in a field's metadata.
VALUE_TYPES = {
    "_check_address": "address (`host:port`, `[v6]:port`; port 0 picks a free port)",
    "_resolve_path": "path (relative to the folder of node.toml)",
    "_resolve_url": "database URL (`sqlite:///relative.db` is relative to the folder of node.toml)",
    "_check_duration": "ISO 8601 duration (e.g. `P1D`)",
}
HEADER = """\
# Configuration reference: node.toml

<!-- Generated by scripts/gen_config_reference.py from provider_node/config/ (models.py,
resource_models.py, calendar_models.py). Do not edit: change the models, then run
`python scripts/gen_config_reference.py`; `--check` (run by tests/docs) fails while this is
stale. -->

`bidui provider init` writes a commented `node.toml`; `bidui provider load` and
`bidui provider serve` read it with `--config`. Everything is checked at once when it is read:
a key the node does not know is refused (a misspelt key would otherwise be a setting silently
left at its default), integers are strict (`true` is not 1), and each problem is one line naming
the file and the key, e.g. `node.toml: resources[residents].keys.id_number: names undeclared
field 'id'`. Relative paths and relative `sqlite:///` URLs are relative to the folder of
`node.toml`. Values that may hold a password (database URLs) are never repeated in messages.
TLS files are checked when `serve` starts, not when the file is read, so that `load` works on a
machine without certificates.

**Environment overrides.** A key of `[node]`, `[transport]`, `[tls]`, `[keys]` or `[audit]` whose
value is text or an integer can be set from the environment as `BIDUI_<SECTION>_<KEY>`, e.g.
`BIDUI_AUDIT_DATABASE_URL=postgresql+psycopg://bidui@db/audit` or `BIDUI_TRANSPORT_WORKERS=4`;
the column "environment" names the variable. The value is checked like the file's. Boolean and
list keys cannot be set this way (the environment's text is refused for them).

Sections left out take their defaults; only `[node] department` and each resource's required
keys must be written.
"""


@dataclass(frozen=True)
class Key:
    """One row of the reference."""

    name: str
    kind: str
    default: str
    description: str
    environment: str


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """The comments above and beside each field in ``model``'s class body, and its attribute
    docstring, by field name."""
    try:
        source = textwrap.dedent(inspect.getsource(model))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    comments_by_line: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments_by_line[token.start[0]] = token.string.lstrip("#").strip()
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    found: dict[str, str] = {}
    statements = body.body
    for position, statement in enumerate(statements):
        if not isinstance(statement, ast.AnnAssign) or not isinstance(statement.target, ast.Name):
            continue
        parts: list[str] = []
        above: list[str] = []
        line = statement.lineno - 1
        while line >= 1 and lines[line - 1].strip().startswith("#"):
            above.insert(0, comments_by_line.get(line, ""))
            line -= 1
        parts += above
        end = statement.end_lineno or statement.lineno
        parts += [
            comments_by_line[n] for n in range(statement.lineno, end + 1) if n in comments_by_line
        ]
        following = statements[position + 1] if position + 1 < len(statements) else None
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            parts.append(inspect.cleandoc(following.value.value))
        text = " ".join(part for part in parts if part)
        if text:
            found[statement.target.id] = text
    return found


def _validator_notes(metadata: list[Any]) -> tuple[str | None, list[str]]:
    """The value type a validator tells (path, address...) and the constraints it states."""
    kind: str | None = None
    notes: list[str] = []
    for item in metadata:
        if type(item).__name__ == "MinLen":
            notes.append("not empty" if item.min_length == 1 else f"at least {item.min_length}")
        func = getattr(item, "func", None)
        if func is None:
            continue
        name = func.__name__
        if name in VALUE_TYPES:
            kind = VALUE_TYPES[name]
        cells = dict(zip(func.__code__.co_freevars, func.__closure__ or (), strict=True))
        if "lo" in cells and "hi" in cells:
            notes.append(f"{cells['lo'].cell_contents:,} to {cells['hi'].cell_contents:,}")
        if "what" in cells and "pattern" in cells:
            notes.append(str(cells["what"].cell_contents).replace("*", "\\*"))
    return kind, notes


def _type_name(annotation: Any) -> str:
    """A TOML reader's name for ``annotation``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        inner = args[0]
        kind, notes = _validator_notes(list(args[1:]))
        base = kind or _type_name(inner)
        return f"{base} ({', '.join(notes)})" if notes else base
    if origin in (typing.Union, types.UnionType):
        present = [arg for arg in args if arg is not type(None)]
        return " or ".join(_type_name(arg) for arg in present)
    if origin is tuple:
        return f"list of {_type_name(args[0])}"
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return f"table of {_type_name(args[0])} = {_type_name(args[1])}"
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return "one of " + ", ".join(f"`{member.value}`" for member in annotation)
        if issubclass(annotation, bool):
            return "boolean"
        if issubclass(annotation, int):
            return "integer"
        if issubclass(annotation, str):
            return "string"
        if issubclass(annotation, Path):
            return "path"
        if issubclass(annotation, _dt.date):
            return "date"
        if issubclass(annotation, BaseModel):
            return "table"
    return str(annotation)


def _toml(value: Any) -> str:
    """``value`` as node.toml would write it."""
    if isinstance(value, enum.Enum):
        return _toml(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:_}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, str | Path):
        return '"' + str(value) + '"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _default(dotted: str, field: FieldInfo) -> str:
    if dotted in DEFAULTS:
        return DEFAULTS[dotted]
    if field.default_factory is not None:
        factory: Any = field.default_factory
        return f"`{_toml(factory())}`"
    if field.default is PydanticUndefined:
        return "**required**"
    if field.default is None:
        return "none"
    return f"`{_toml(field.default)}`"


def _field_kind(field: FieldInfo) -> str:
    kind, notes = _validator_notes(list(field.metadata))
    base = kind or _type_name(field.annotation)
    if base.startswith("integer") and any(type(m).__name__ == "Strict" for m in field.metadata):
        base = "integer"
    return f"{base} ({', '.join(notes)})" if notes else base


def _model_of(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The model a table key holds, and whether it is an array of such tables."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if typing.get_origin(annotation) is tuple:
        inner = typing.get_args(annotation)[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner, True
    return None


def _overridable(section: str, field: FieldInfo) -> bool:
    """What ``load._apply_environment`` can set: text and integers of ``SECTIONS``' tables."""
    if section not in SECTIONS:
        return False
    annotation = field.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return isinstance(annotation, type) and (
        (issubclass(annotation, int) and not issubclass(annotation, bool))
        or issubclass(annotation, str | Path)
    )


@dataclass(frozen=True)
class Table:
    """One table of node.toml and its keys."""

    heading: str
    doc: str
    keys: tuple[Key, ...]


def _tables(model: type[BaseModel], path: str, heading: str) -> Iterator[Table]:
    comments = _comments(model)
    rows: list[Key] = []
    nested: list[tuple[type[BaseModel], str, str]] = []
    for name, field in model.model_fields.items():
        dotted = f"{path}.{name}"
        contained = _model_of(field.annotation)
        parts = []
        if dotted in GUIDE:
            parts.append(GUIDE[dotted])
        if name in comments and dotted not in CODE_NOTES:
            parts.append(_sentence(comments[name]))
        if field.description:
            parts.append(f"Written as {field.description}.")
        kind = _field_kind(field)
        if contained is not None:
            sub, array = contained
            sub_heading = f"[[{dotted}]]" if array else f"[{dotted}]"
            kind = "array of tables" if array else "table"
            parts.append(f"See [`{sub_heading}`](#{_anchor(sub_heading)}).")
            nested.append((sub, dotted, sub_heading))
        section = path.split(".")[0]
        environment = ""
        if "." not in path and _overridable(section, field):
            environment = f"`BIDUI_{section.upper()}_{name.upper()}`"
        rows.append(Key(name, kind, _default(dotted, field), " ".join(parts), environment))
    yield Table(heading, inspect.cleandoc(model.__doc__ or ""), tuple(rows))
    for sub, dotted, sub_heading in nested:
        yield from _tables(sub, dotted, sub_heading)


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", ")", ":")) else text + "."


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading made of ``heading`` in backticks."""
    return "".join(c for c in heading.lower() if c.isalnum() or c in "-_ ").replace(" ", "-")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _sections() -> Iterator[Table]:
    for name, field in NodeConfig.model_fields.items():
        contained = _model_of(field.annotation)
        if contained is None:
            continue  # ``path``: the file itself, set by load_config, never written in it
        model, array = contained
        yield from _tables(model, name, f"[[{name}]]" if array else f"[{name}]")


def _model_doc(doc: str) -> str:
    """The model's docstring without its first line's table name, which the heading gives."""
    if not doc:
        return ""
    text = re.sub(r"^``\[\[?[a-z.]+\]\]?``[:;]?\s*", "", " ".join(doc.split()))
    return _sentence(text.replace("``", "`"))


def render() -> str:
    out = [HEADER]
    for table in _sections():
        out.append(f"\n## `{table.heading}`\n")
        doc = _model_doc(table.doc)
        if doc:
            out.append(f"\n{doc}\n")
        out.append("\n| key | type | default | environment | description |\n")
        out.append("| --- | --- | --- | --- | --- |\n")
        for key in table.keys:
            cells = (f"`{key.name}`", key.kind, key.default, key.environment, key.description)
            out.append("| " + " | ".join(_cell(cell) for cell in cells) + " |\n")
    return "".join(out)


def _check_guide() -> list[str]:
    """GUIDE, CODE_NOTES and DEFAULTS entries naming keys the models no longer have."""
    known: set[str] = set()

    def walk(model: type[BaseModel], path: str) -> None:
        for name, field in model.model_fields.items():
            known.add(f"{path}.{name}")
            contained = _model_of(field.annotation)
            if contained is not None:
                walk(contained[0], f"{path}.{name}")

    for name, field in NodeConfig.model_fields.items():
        contained = _model_of(field.annotation)
        if contained is not None:
            walk(contained[0], name)
    return sorted((set(GUIDE) | CODE_NOTES | set(DEFAULTS)) - known)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if docs/configuration.md is stale"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = _check_guide()
    if unknown:
        print(
            "scripts/gen_config_reference.py describes keys the models no longer have: "
            + ", ".join(unknown),
            file=sys.stderr,
        )
        return 1
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(
                f"{args.output} is stale: run python scripts/gen_config_reference.py",
                file=sys.stderr,
            )
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
