"""provider_node.config: parsing, path resolution, environment overrides, validation messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from comparator.fields import FieldType
from provider_node.config import ConfigError, NodeConfig, load_config, parse_address
from provider_node.core.vocabulary import Category, ComparisonMode, SharingType
from provider_node.setup.bootstrap import NODE_TOML_TEMPLATE

EXAMPLE = """\
[node]
name = "瀘州市公安局 data service node"
department = "luzhou-psb"
listen = "127.0.0.1:50051"
metrics_listen = "127.0.0.1:9464"
data_dir = "data"
max_batch_items = 100000
max_message_bytes = 16777216
blinded_session_seconds = 300

[tls]
ca_cert = "pki/ca.pem"
server_cert = "pki/node.pem"
server_key = "pki/node.key"

[keys]
dir = "keys"

[audit]
database_url = "sqlite:///audit.db"
retention_days = 730

[[resources]]
id = "residents"
name = "瀘州市常住人口基礎信息"
owner_department = "luzhou-psb"
category = "basic"
sharing_type = "unconditional"
update_period = "P1D"
usage_conditions = "comparison only"
modes = ["hashed", "blinded"]
expose_record_count = false
key_version = 1
fields = { id_number = "cn_resident_id", name = "person_name", birth_date = "date" }
keys = { "id_number" = ["id_number"], "id_number+name" = ["id_number", "name"] }
source = { url = "sqlite:///source.db", query = "SELECT * FROM residents" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, **environ: str) -> NodeConfig:
    return load_config(write(tmp_path, text), environ=environ)


def problems(tmp_path: Path, text: str, **environ: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, **environ)
    return info.value.problems


def only_problem(tmp_path: Path, text: str, **environ: str) -> str:
    found = problems(tmp_path, text, **environ)
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'node.toml'}: "), found[0]
    return found[0]


def test_the_contract_example_parses_with_paths_resolved(tmp_path: Path) -> None:
    config = load(tmp_path, EXAMPLE)
    assert config.path == tmp_path / "node.toml"
    assert config.node.department == "luzhou-psb"
    assert config.node.data_dir == tmp_path / "data"
    assert config.node.index_dir == tmp_path / "data" / "indexes"
    assert config.node.max_batch_items == 100_000
    assert config.tls.ca_cert == tmp_path / "pki" / "ca.pem"
    assert config.keys.dir == tmp_path / "keys"
    assert config.audit.database_url == f"sqlite:///{tmp_path / 'audit.db'}"
    assert config.audit.retention_days == 730
    (resource,) = config.resources
    assert resource.id == "residents"
    assert resource.category is Category.BASIC
    assert resource.sharing_type is SharingType.UNCONDITIONAL
    assert resource.modes == (ComparisonMode.HASHED, ComparisonMode.BLINDED)
    assert resource.fields["id_number"] is FieldType("cn_resident_id")
    assert resource.keys["id_number+name"] == ("id_number", "name")
    assert resource.source.url == f"sqlite:///{tmp_path / 'source.db'}"
    assert resource.source.csv is None
    assert config.resource("residents") is resource


def test_defaults_fill_what_is_left_out(tmp_path: Path) -> None:
    config = load(tmp_path, '[node]\ndepartment = "luzhou-psb"\n')
    assert config.node.name == "luzhou-psb"
    assert config.node.listen == "127.0.0.1:50051"
    assert config.node.blinded_session_seconds == 300
    assert config.audit.retention_days == 730
    assert config.resources == ()


def test_csv_source_and_absolute_or_server_urls(tmp_path: Path) -> None:
    text = EXAMPLE.replace(
        'source = { url = "sqlite:///source.db", query = "SELECT * FROM residents" }',
        'source = { csv = "in/residents.csv" }',
    ).replace(
        'database_url = "sqlite:///audit.db"',
        'database_url = "postgresql+psycopg://bidui:pw@db.example/bidui"',
    )
    config = load(tmp_path, text)
    assert config.resources[0].source.csv == tmp_path / "in" / "residents.csv"
    assert config.audit.database_url == "postgresql+psycopg://bidui:pw@db.example/bidui"
    assert "pw" not in repr(config.audit)
    absolute = EXAMPLE.replace("sqlite:///audit.db", "sqlite:////var/lib/bidui/audit.db")
    assert load(tmp_path, absolute).audit.database_url == "sqlite:////var/lib/bidui/audit.db"


def test_environment_overrides_with_types(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        EXAMPLE,
        BIDUI_AUDIT_DATABASE_URL="sqlite:///elsewhere.db",
        BIDUI_NODE_LISTEN="0.0.0.0:6000",
        BIDUI_NODE_METRICS_LISTEN="[::1]:0",
        BIDUI_NODE_MAX_BATCH_ITEMS="500",
        BIDUI_KEYS_DIR="/secure/keys",
    )
    assert config.audit.database_url == f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert config.node.listen == "0.0.0.0:6000"
    assert config.node.metrics_listen == "[::1]:0"
    assert config.node.max_batch_items == 500
    assert config.keys.dir == Path("/secure/keys")


def test_environment_override_of_the_wrong_type(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, EXAMPLE, BIDUI_NODE_MAX_BATCH_ITEMS="many")
    assert line == "environment BIDUI_NODE_MAX_BATCH_ITEMS: expected an integer"
    (line,) = problems(tmp_path, EXAMPLE, BIDUI_AUDIT_RETENTION_DAYS="365")
    assert "article 35 requires audit logs be kept at least 730 days" in line


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'sharing_type = "unconditional"',
            'sharing_type = "public"',
            "resources[residents].sharing_type: unknown sharing type 'public' "
            "(expected unconditional, conditional, not_shared)",
        ),
        (
            'category = "basic"',
            'category = "misc"',
            "resources[residents].category: unknown category 'misc'",
        ),
        (
            'birth_date = "date"',
            'birth_date = "datetime"',
            "resources[residents].fields.birth_date: unknown field type 'datetime'",
        ),
        (
            'modes = ["hashed", "blinded"]',
            'modes = ["hashed", "psi"]',
            "resources[residents].modes: unknown mode 'psi'",
        ),
        (
            '"id_number+name" = ["id_number", "name"]',
            '"id_number+name" = ["id_number", "full_name"]',
            "resources[residents].keys.id_number+name: names undeclared field 'full_name'",
        ),
        (
            'id = "residents"',
            'id = "Residents!"',
            "resources[#1].id: 'Residents!' is not a resource id",
        ),
        (
            "retention_days = 730",
            "retention_days = 729",
            "audit.retention_days: 729 is too short: article 35 requires audit logs be kept "
            "at least 730 days",
        ),
        (
            'database_url = "sqlite:///audit.db"',
            'database_url = "sqlite://"',
            "audit.database_url: an in-memory database loses the audit log",
        ),
        (
            'database_url = "sqlite:///audit.db"',
            'database_url = ""',
            "audit.database_url: must not be empty",
        ),
        (
            "max_batch_items = 100000",
            "max_batch_items = 0",
            "node.max_batch_items: must be between 1 and 1000000, got 0",
        ),
        (
            "max_batch_items = 100000",
            "max_batch_items = 2000000",
            "node.max_batch_items: must be between 1 and 1000000, got 2000000",
        ),
        (
            "max_batch_items = 100000",
            "max_batch_items = true",
            "node.max_batch_items: must be an integer",
        ),
        (
            'listen = "127.0.0.1:50051"',
            'listen = "localhost"',
            "node.listen: invalid address 'localhost'",
        ),
        (
            'update_period = "P1D"',
            'update_period = "daily"',
            "resources[residents].update_period: 'daily' is not an ISO 8601 duration",
        ),
        (
            "blinded_session_seconds = 300",
            "blinded_session_secs = 300",
            "node.blinded_session_secs: unknown key",
        ),
        (
            "expose_record_count = false",
            'expose_record_count = "no"',
            "resources[residents].expose_record_count: must be true or false",
        ),
    ],
)
def test_each_problem_gets_one_precise_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in EXAMPLE
    line = only_problem(tmp_path, EXAMPLE.replace(old, new))
    assert expected in line


@pytest.mark.parametrize(
    "source",
    [
        'source = { csv = "a.csv", url = "sqlite:///a.db", query = "SELECT 1" }',
        "source = { }",
    ],
)
def test_source_needs_exactly_one_kind(tmp_path: Path, source: str) -> None:
    text = EXAMPLE.replace(EXAMPLE.splitlines()[-1], source)
    line = only_problem(tmp_path, text)
    assert "resources[residents].source: give exactly one of source.url + source.query" in line


def test_source_url_without_query(tmp_path: Path) -> None:
    text = EXAMPLE.replace(EXAMPLE.splitlines()[-1], 'source = { url = "sqlite:///a.db" }')
    assert "resources[residents].source.query: is required" in only_problem(tmp_path, text)


def test_duplicate_resource_ids(tmp_path: Path) -> None:
    block = EXAMPLE[EXAMPLE.index("[[resources]]") :]
    line = only_problem(tmp_path, EXAMPLE + "\n" + block)
    assert "resources[residents].id: duplicate resource id 'residents'" in line


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    text = EXAMPLE.replace("retention_days = 730", "retention_days = 30").replace(
        'category = "basic"', 'category = "other"'
    )
    found = problems(tmp_path, text)
    assert len(found) == 2
    assert all("\n" not in line for line in found)


def test_bad_database_url_is_not_repeated(tmp_path: Path) -> None:
    text = EXAMPLE.replace('"sqlite:///audit.db"', '"no url with secret-password"')
    line = only_problem(tmp_path, text)
    assert "audit.database_url: is not a valid SQLAlchemy database URL" in line
    assert "secret-password" not in line


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(tmp_path, "[node\n")


def test_tls_files_are_checked_at_serve_time_not_parse_time(tmp_path: Path) -> None:
    config = load(tmp_path, EXAMPLE)
    with pytest.raises(ConfigError) as info:
        config.tls.check_files(config.path)
    assert len(info.value.problems) == 3
    assert f"tls.ca_cert: file {tmp_path / 'pki' / 'ca.pem'} does not exist" in str(info.value)
    (tmp_path / "pki").mkdir()
    for name in ("ca.pem", "node.pem", "node.key"):
        (tmp_path / "pki" / name).write_text("x")
    key = tmp_path / "pki" / "node.key"
    key.chmod(0o644)
    with pytest.raises(
        ConfigError,
        match=r"tls.server_key: private key .* is readable by group or "
        r"others \(mode 0644\); run `chmod 600",
    ):
        config.tls.check_files(config.path)
    key.chmod(0o600)
    config.tls.check_files(config.path)


def test_unknown_resource_lookup(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no resource with id 'vehicles'"):
        load(tmp_path, EXAMPLE).resource("vehicles")


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    for bad in ("127.0.0.1", ":80", "host:99999", "::1:80", "[zz]:80"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_capacity_and_transport_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, '[node]\ndepartment = "luzhou-psb"\n')
    # On by default: about 4,000 items a second per department, under the blinded capacity.
    assert config.node.max_items_per_minute == 240_000
    assert config.node.max_open_sessions == 1024
    assert config.node.max_open_sessions_per_department == 16
    transport = config.transport
    assert transport.max_workers == 16
    assert transport.max_concurrent_rpcs == 1024
    assert transport.handshake_timeout_seconds == 5
    assert transport.max_connection_idle_seconds == 300
    assert transport.max_connection_age_seconds == 3600


def test_no_rate_limit_is_an_explicit_zero(tmp_path: Path) -> None:
    text = EXAMPLE.replace("[tls]", "max_items_per_minute = 0\n\n[tls]")
    assert load(tmp_path, text).node.max_items_per_minute == 0


def test_transport_table_and_its_environment_overrides(tmp_path: Path) -> None:
    text = EXAMPLE + "\n[transport]\nmax_workers = 4\nmax_connection_age_seconds = 600\n"
    config = load(tmp_path, text, BIDUI_TRANSPORT_MAX_CONCURRENT_RPCS="8")
    assert (config.transport.max_workers, config.transport.max_concurrent_rpcs) == (4, 8)
    assert config.transport.max_connection_age_seconds == 600
    line = only_problem(tmp_path, EXAMPLE + "\n[transport]\nmax_workers = 0\n")
    assert "transport.max_workers: must be between 1 and 1024, got 0" in line


def test_sessions_per_department_fit_within_the_total(tmp_path: Path) -> None:
    text = EXAMPLE.replace("[tls]", "max_open_sessions = 8\n\n[tls]")
    line = only_problem(tmp_path, text)
    assert "node.max_open_sessions_per_department: must not exceed node.max_open_sessions (8)" in (
        line
    )


def test_ca_key_next_to_the_ca_certificate_when_it_is_there(tmp_path: Path) -> None:
    assert load(tmp_path, EXAMPLE).tls.ca_key is None
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.key").write_text("x")
    assert load(tmp_path, EXAMPLE).tls.ca_key == tmp_path / "pki" / "ca.key"
    text = EXAMPLE.replace("[keys]", 'ca_key = "offline/ca.key"\n\n[keys]')
    assert load(tmp_path, text).tls.ca_key == tmp_path / "offline" / "ca.key"


def test_unknown_sections_and_the_reserved_path_key(tmp_path: Path) -> None:
    found = problems(tmp_path, 'path = "/etc"\n[nodes]\nx = 1\n' + EXAMPLE)
    assert found == tuple(
        f"{tmp_path / 'node.toml'}: {key}: unknown section "
        "(expected node, transport, tls, keys, audit, calendar, resources)"
        for key in ("path", "nodes")
    )


def test_problems_deep_in_a_resource_name_it_and_its_key(tmp_path: Path) -> None:
    text = EXAMPLE.replace('"id_number+name" = ', '"id number" = ').replace(
        "expose_record_count = false", "expose_record_count = false\nmodes_extra = 1"
    )
    found = problems(tmp_path, text)
    assert len(found) == 2
    assert (
        "resources[residents].keys.'id number': 'id number' is not a comparison key name"
        in (found[0])
    )
    assert "resources[residents].modes_extra: unknown key (expected one of: id, name," in found[1]


def test_shape_mistakes_say_which_shape(tmp_path: Path) -> None:
    text = EXAMPLE.replace('modes = ["hashed", "blinded"]', "modes = []")
    expected = 'resources[residents].modes: must be a non-empty list, e.g. ["hashed", "blinded"]'
    assert expected in only_problem(tmp_path, text)
    audit = '[audit]\ndatabase_url = "sqlite:///audit.db"\nretention_days = 730\n'
    text = "audit = 3\n" + EXAMPLE.replace(audit, "")
    assert only_problem(tmp_path, text).endswith("audit: must be a table ([audit])")


def test_the_defaults_init_shows_in_comments_are_the_defaults(tmp_path: Path) -> None:
    written = NODE_TOML_TEMPLATE.format(department="luzhou-psb")
    uncommented = re.sub(r"(?m)^# (?=\[\w+\]$|\w+ = )", "", written)
    assert uncommented.count("\n") == written.count("\n")
    assert "\nmax_items_per_minute = 240000" in uncommented
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.key").write_text("x")  # the default ca_key is one that exists
    assert load(tmp_path, uncommented) == load(tmp_path, written)


def test_metrics_stay_on_loopback_unless_exposed_on_purpose(tmp_path: Path) -> None:
    text = EXAMPLE.replace('metrics_listen = "127.0.0.1:9464"', 'metrics_listen = "0.0.0.0:9464"')
    assert text != EXAMPLE
    assert "node.metrics_listen: listens beyond this machine" in only_problem(tmp_path, text)
    exposed = text.replace(
        'metrics_listen = "0.0.0.0:9464"', 'metrics_listen = "0.0.0.0:9464"\nmetrics_expose = true'
    )
    assert load(tmp_path, exposed).node.metrics_expose
