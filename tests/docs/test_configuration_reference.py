"""docs/configuration.md is what scripts/gen_config_reference.py makes of the config models now."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from provider_node.config.models import SECTIONS, NodeConfig
from provider_node.config.resource_models import ResourceConfig, SourceConfig
from tests.docs.conftest import DOCS, ROOT

SCRIPT = ROOT / "scripts" / "gen_config_reference.py"
REFERENCE = DOCS / "configuration.md"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_config_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


def test_the_reference_is_up_to_date() -> None:
    checked = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr


def test_a_stale_reference_fails_the_check(generator: ModuleType, tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(REFERENCE.read_text("utf-8").replace("`240_000`", "`250_000`"), "utf-8")
    assert generator.main(["--check", "--output", str(stale)]) == 1
    assert generator.main(["--check", "--output", str(tmp_path / "absent.md")]) == 1
    fresh = tmp_path / "fresh.md"
    assert generator.main(["--output", str(fresh)]) == 0
    assert generator.main(["--check", "--output", str(fresh)]) == 0


def test_every_key_of_every_table_has_a_described_row() -> None:
    text = REFERENCE.read_text("utf-8")
    tables = {f"## `[{name}]`": model for name, model in SECTIONS.items()}
    tables["## `[[resources]]`"] = ResourceConfig
    tables["## `[resources.source]`"] = SourceConfig
    for heading, model in tables.items():
        assert heading in text, heading
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        for key in model.model_fields:
            rows = [line for line in section.splitlines() if line.startswith(f"| `{key}` |")]
            assert len(rows) == 1, f"{heading}: {key}"
            description = rows[0].rstrip(" |").rsplit(" | ", 1)[-1]
            assert description.strip(), f"{heading}: {key} has no description"
    assert "path" in NodeConfig.model_fields and "## `[path]`" not in text


def test_keys_it_describes_must_exist(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(generator.GUIDE, "node.no_such_key", "gone")
    assert generator.main(["--check"]) == 1
