"""``bidui provider init | load`` through click's CliRunner: init creates only what is missing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from bidui_cli.operator.provider import provider
from provider_node.config import load_config
from provider_node.identity.names import department_from_certificate
from provider_node.resources.keys import HMAC_MASTER_FILE, OPRF_SEED_FILE
from provider_node.setup.bootstrap import init_node
from tests.cli.files import mode_of, node_files

VALID_IDS = ["11010519491231002X", "510502198001010013"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_init_creates_a_working_node(runner: CliRunner, tmp_path: Path) -> None:
    directory = tmp_path / "node"
    result = runner.invoke(
        provider,
        ["init", "--dir", str(directory), "--client", "luzhou-tax", "--client", "luzhou-health"],
    )
    assert result.exit_code == 0, result.output
    for name in (OPRF_SEED_FILE, HMAC_MASTER_FILE):
        assert mode_of(directory / "keys" / name) == 0o600
        secret = (directory / "keys" / name).read_bytes()
        assert secret.hex() not in result.output
    for key in ("pki/ca.key", "pki/node.key", "pki/clients/luzhou-tax.key"):
        assert mode_of(directory / key) == 0o600
    client_pem = (directory / "pki" / "clients" / "luzhou-health.pem").read_bytes()
    assert department_from_certificate(client_pem) == "luzhou-health"
    assert "bidui provider load --config" in result.output
    assert "bidui provider serve --config" in result.output

    text = (directory / "node.toml").read_text(encoding="utf-8")
    assert "# " in text  # the comments survive
    config = load_config(directory / "node.toml", environ={})
    config.tls.check_files(config.path)
    assert config.node.department == "luzhou-psb"
    assert [r.id for r in config.resources] == ["residents"]


def test_init_twice_keeps_everything(runner: CliRunner, tmp_path: Path) -> None:
    assert runner.invoke(provider, ["init", "--dir", str(tmp_path)]).exit_code == 0
    config = tmp_path / "node.toml"
    edited = config.read_bytes().replace(b"max_batch_items = 100000", b"max_batch_items = 7")
    config.write_bytes(edited + b"# the operator's own note\n")
    before = node_files(tmp_path)
    again = runner.invoke(provider, ["init", "--dir", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert node_files(tmp_path) == before  # node.toml byte for byte, keys, CA, certificates
    assert "created" not in again.output
    for name in ("node.toml", "keys/oprf_seed", "pki/ca.pem", "pki/ca.key", "pki/node.pem"):
        assert f"kept     {name}" in again.output


def test_init_recreates_only_a_missing_key_file(runner: CliRunner, tmp_path: Path) -> None:
    assert runner.invoke(provider, ["init", "--dir", str(tmp_path)]).exit_code == 0
    (tmp_path / "keys" / HMAC_MASTER_FILE).unlink()
    before = node_files(tmp_path)
    again = runner.invoke(provider, ["init", "--dir", str(tmp_path)])
    assert again.exit_code == 0, again.output
    after = node_files(tmp_path)
    assert set(after) - set(before) == {f"keys/{HMAC_MASTER_FILE}"}
    assert {name: after[name] for name in before} == before
    assert mode_of(tmp_path / "keys" / HMAC_MASTER_FILE) == 0o600
    assert f"created  keys/{HMAC_MASTER_FILE}" in again.output
    assert "raise each resource's key_version" in again.output  # the warning, on stderr


def test_init_issues_a_client_certificate_for_a_new_department(
    runner: CliRunner, tmp_path: Path
) -> None:
    init_node(tmp_path)
    before = node_files(tmp_path)
    result = runner.invoke(provider, ["init", "--dir", str(tmp_path), "--client", "luzhou-tax"])
    assert result.exit_code == 0, result.output
    after = node_files(tmp_path)
    assert set(after) - set(before) == {"pki/clients/luzhou-tax.pem", "pki/clients/luzhou-tax.key"}
    assert {name: after[name] for name in before} == before


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("pki/ca.pem", "restore ca.pem from the node's backup"),
        ("pki/ca.key", "the key of the CA that would sign it"),
        ("pki/node.key", "move node.pem away and run init again"),
    ],
)
def test_init_refuses_what_would_contradict_existing_files(
    runner: CliRunner, tmp_path: Path, missing: str, message: str
) -> None:
    init_node(tmp_path)
    (tmp_path / missing).unlink()
    if missing == "pki/ca.key":  # the CA key matters only when there is something to issue
        (tmp_path / "pki" / "node.pem").unlink()
        (tmp_path / "pki" / "node.key").unlink()
    before = node_files(tmp_path)
    result = runner.invoke(provider, ["init", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output
    assert node_files(tmp_path) == before


def test_init_does_not_sign_with_a_ca_key_kept_elsewhere(runner: CliRunner, tmp_path: Path) -> None:
    init_node(tmp_path)
    config = tmp_path / "node.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("[tls]\n", '[tls]\nca_key = "offline/ca.key"\n'), encoding="utf-8"
    )
    before = node_files(tmp_path)
    result = runner.invoke(provider, ["init", "--dir", str(tmp_path), "--client", "luzhou-tax"])
    assert result.exit_code == 2
    assert "issue it with the CA of" in result.output
    assert node_files(tmp_path) == before


def test_init_refuses_another_department_for_an_existing_node(
    runner: CliRunner, tmp_path: Path
) -> None:
    init_node(tmp_path)
    result = runner.invoke(provider, ["init", "--dir", str(tmp_path), "--department", "x-bureau"])
    assert result.exit_code == 2
    assert "is the node of 'luzhou-psb', not 'x-bureau'" in result.output


def test_init_rejects_a_bad_department(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(provider, ["init", "--dir", str(tmp_path), "--client", "Tax Office"])
    assert result.exit_code == 2
    assert "'Tax Office' is not a department id" in result.output
    assert not (tmp_path / "keys").exists()


def test_load_builds_the_indexes_and_reports_counts(runner: CliRunner, tmp_path: Path) -> None:
    init_node(tmp_path)
    with sqlite3.connect(tmp_path / "source.db") as connection:
        connection.executemany(
            "INSERT INTO residents VALUES (?, ?, ?)",
            [
                (VALID_IDS[0], "王偉", "1949-12-31"),
                (VALID_IDS[1], "李芳", "1980-01-01"),
                ("510502198001010017", "張敏", "1980-01-01"),
            ],
        )
    connection.close()
    result = runner.invoke(provider, ["load", "--config", str(tmp_path / "node.toml")])
    assert result.exit_code == 0, result.output
    assert "residents: 3 source rows" in result.output
    assert "id_number+name" in result.output
    assert "invalid for id_number: id_number:" in result.output and "(rows 3)" in result.output
    assert "510502198001010017" not in result.output
    for key in ("id_number", "id_number+name"):
        for mode in ("hashed", "blinded"):
            assert (tmp_path / "data" / "indexes" / "residents" / f"{key}.{mode}.idx").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "{dir}/absent.toml"], "no such configuration file"),
        (["--config", "{dir}/node.toml", "--resource", "vehicles"], "no resource 'vehicles'"),
    ],
)
def test_load_user_mistakes_exit_2(
    runner: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    init_node(tmp_path)
    result = runner.invoke(provider, ["load", *[a.format(dir=tmp_path) for a in args]])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_load_with_a_bad_config_names_the_key(runner: CliRunner, tmp_path: Path) -> None:
    init_node(tmp_path)
    config = tmp_path / "node.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("retention_days = 730", "retention_days = 365"),
        encoding="utf-8",
    )
    result = runner.invoke(provider, ["load", "--config", str(config)])
    assert result.exit_code == 2
    assert "audit.retention_days" in result.output
    assert "article 35 requires audit logs be kept at least 730 days" in result.output


def test_load_with_a_broken_source_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    init_node(tmp_path)
    with sqlite3.connect(tmp_path / "source.db") as connection:
        connection.execute("DROP TABLE residents")
    connection.close()
    result = runner.invoke(provider, ["load", "--config", str(tmp_path / "node.toml")])
    assert result.exit_code == 2
    assert "no such table: residents" in result.output


def test_load_without_a_key_points_to_init_which_recreates_it(
    runner: CliRunner, tmp_path: Path
) -> None:
    init_node(tmp_path)
    (tmp_path / "keys" / OPRF_SEED_FILE).unlink()
    result = runner.invoke(provider, ["load", "--config", str(tmp_path / "node.toml")])
    assert result.exit_code == 2
    assert f"`bidui provider init --dir {tmp_path}`, which creates only" in result.output
    assert runner.invoke(provider, ["init", "--dir", str(tmp_path)]).exit_code == 0
    loaded = runner.invoke(provider, ["load", "--config", str(tmp_path / "node.toml")])
    assert loaded.exit_code == 0, loaded.output


def test_load_with_world_readable_keys_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    init_node(tmp_path)
    (tmp_path / "keys" / HMAC_MASTER_FILE).chmod(0o644)
    result = runner.invoke(provider, ["load", "--config", str(tmp_path / "node.toml")])
    assert result.exit_code == 2
    assert "readable by group or others" in result.output


@pytest.mark.parametrize("command", [[], ["init"], ["load"]])
def test_help(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(provider, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
