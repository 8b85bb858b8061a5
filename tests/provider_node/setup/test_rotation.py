"""The rotation plans: raising key_version in the operator's own node.toml, and the refusals that
come before any file changes. The confirmed rotations end to end are in tests/cli."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from provider_node.config import load_config
from provider_node.setup.bootstrap import init_node
from provider_node.setup.rotation import CaRotation, KeyRotation, RotationError, raise_key_versions

TWO_RESOURCES = """\
[node]
department = "luzhou-psb"   # [[resources]] in a comment is not a table

[[resources]]
id = "residents"
key_version = 7   # rotated twice a year
[resources.source]
key_version = "not this one: a subtable's key"

[[ resources ]]  # spaced header
id = "vehicles"
fields = { plate = "text" }
"""


def test_raise_key_versions_keeps_everything_else() -> None:
    raised = raise_key_versions(TWO_RESOURCES)
    assert raised == TWO_RESOURCES.replace("key_version = 7 ", "key_version = 8 ").replace(
        "[[ resources ]]  # spaced header\n", "[[ resources ]]  # spaced header\nkey_version = 2\n"
    )
    resources = tomllib.loads(raised)["resources"]
    assert [r["key_version"] for r in resources] == [8, 2]
    assert resources[0]["source"]["key_version"].startswith("not this one")


def test_key_rotation_refuses_resources_it_cannot_edit_line_by_line(tmp_path: Path) -> None:
    init = init_node(tmp_path)
    text = init.config_path.read_text(encoding="utf-8")
    # The same resource as an inline array at the top of the file (before any table).
    inline = (
        'resources = [{ id = "residents", name = "Residents", category = "basic", '
        'sharing_type = "unconditional", update_period = "P1D", usage_conditions = "-", '
        'fields = { id_number = "cn_resident_id" }, keys = { "id_number" = ["id_number"] }, '
        'source = { csv = "r.csv" } }]\n' + text[: text.index("\n[[resources]]")]
    )
    init.config_path.write_text(inline, encoding="utf-8")
    with pytest.raises(RotationError, match="raise it by hand"):
        KeyRotation(load_config(init.config_path))
    assert init.config_path.read_text(encoding="utf-8") == inline


def test_key_rotation_lists_each_resource_version(tmp_path: Path) -> None:
    init = init_node(tmp_path)
    plan = KeyRotation(load_config(init.config_path))
    assert any("residents 1 -> 2" in line for line in plan.invalidates)


def test_ca_rotation_keeps_the_server_names(tmp_path: Path) -> None:
    init = init_node(tmp_path)
    plan = CaRotation(load_config(init.config_path))
    assert plan.hostnames == ("localhost", "127.0.0.1")
    assert plan.departments == ("luzhou-civil-affairs",)


def test_ca_rotation_refuses_a_server_key_elsewhere(tmp_path: Path) -> None:
    init = init_node(tmp_path)
    text = init.config_path.read_text(encoding="utf-8")
    init.config_path.write_text(
        text.replace('server_key = "pki/node.key"', 'server_key = "secret/node.key"'),
        encoding="utf-8",
    )
    with pytest.raises(RotationError, match=r"not beside tls\.server_cert"):
        CaRotation(load_config(init.config_path))


def test_ca_rotation_refuses_a_ca_key_kept_elsewhere(tmp_path: Path) -> None:
    init = init_node(tmp_path)
    text = init.config_path.read_text(encoding="utf-8")
    init.config_path.write_text(
        text.replace("[tls]\n", '[tls]\nca_key = "offline/ca.key"\n'), encoding="utf-8"
    )
    with pytest.raises(RotationError, match="not a development CA"):
        CaRotation(load_config(init.config_path))


def test_a_second_rotation_within_the_same_second_changes_nothing(tmp_path: Path) -> None:
    init = init_node(tmp_path)
    moment = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    KeyRotation(load_config(init.config_path)).carry_out(lambda: moment)
    assert (tmp_path / "keys" / "oprf_seed.replaced-20261129T120000Z").is_file()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(RotationError, match="try again in a second"):
        KeyRotation(load_config(init.config_path)).carry_out(lambda: moment)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
