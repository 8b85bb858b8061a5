"""The layers of pyproject.toml's [tool.importlinter] hold on the real tree, and a violation fails.

The violation cases run ``lint-imports`` on a copy of the packages with one import added, so they
show the contract is live (not vacuously kept because it names the wrong packages).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bidui", "bidui_cli", "comparator", "provider_node", "client_sdk")
CONTRACT = "Layers: bidui_cli > provider_node | client_sdk > comparator | bidui (wire types)"


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` in ``where``: it puts that folder first on sys.path."""
    script = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail("lint-imports is missing: pip install -c requirements/dev.lock -e '.[dev]'")
    return subprocess.run(
        [script, "--no-cache"], cwd=where, capture_output=True, text=True, check=False
    )


def test_the_tree_keeps_its_contracts() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert CONTRACT in result.stdout
    assert "Contracts: 1 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "imported", "shown"),
    [
        ("provider_node/loader.py", "client_sdk", "provider_node.loader -> client_sdk"),
        ("client_sdk/results.py", "provider_node", "client_sdk.results -> provider_node"),
        ("provider_node/keys.py", "bidui_cli", "provider_node.keys -> bidui_cli"),
        ("comparator/index.py", "bidui.v1", "comparator.index -> bidui.v1"),
        ("bidui/__init__.py", "comparator", "bidui -> comparator"),
    ],
)
def test_a_violation_breaks_the_contract(
    tmp_path: Path, module: str, imported: str, shown: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\nimport {imported}  # injected\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "Contracts: 0 kept, 1 broken." in result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert CONTRACT in broken
    assert shown in broken
