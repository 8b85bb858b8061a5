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
ROOMS = ("Node rooms", "Node wire types in transport only", "SDK rooms", "CLI rooms")


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
    for name in (CONTRACT, *ROOMS):
        assert name in result.stdout
    assert f"Contracts: {1 + len(ROOMS)} kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "imported", "contract", "shown"),
    [
        (
            "provider_node/resources/loader.py",
            "client_sdk",
            CONTRACT,
            "provider_node.resources.loader -> client_sdk",
        ),
        (
            "client_sdk/comparison/results.py",
            "provider_node",
            CONTRACT,
            "client_sdk.comparison.results -> provider_node",
        ),
        (
            "provider_node/resources/keys.py",
            "bidui_cli",
            CONTRACT,
            "provider_node.resources.keys -> bidui_cli",
        ),
        ("comparator/index.py", "bidui.v1", CONTRACT, "comparator.index -> bidui.v1"),
        ("bidui/__init__.py", "comparator", CONTRACT, "bidui -> comparator"),
        # Inside the node: a room below imports one above it.
        (
            "provider_node/store/models.py",
            "provider_node.comparison.node",
            "Node rooms",
            "provider_node.store.models -> provider_node.comparison.node",
        ),
        (
            "provider_node/core/errors.py",
            "provider_node.audit.log",
            "Node rooms",
            "provider_node.core.errors -> provider_node.audit.log",
        ),
        (
            "client_sdk/connection/retry.py",
            "client_sdk.comparison.results",
            "SDK rooms",
            "client_sdk.connection.retry -> client_sdk.comparison.results",
        ),
        # Protobuf stays in the transport.
        (
            "provider_node/resources/catalog.py",
            "bidui.v1.catalog_pb2",
            "Node wire types in transport only",
            "provider_node.resources.catalog -> bidui.v1.catalog_pb2",
        ),
        # The roles' commands are siblings: a department command never imports an operator's.
        (
            "bidui_cli/department/compare.py",
            "bidui_cli.operator.governance",
            "CLI rooms",
            "bidui_cli.department.compare -> bidui_cli.operator.governance",
        ),
    ],
)
def test_a_violation_breaks_the_contract(
    tmp_path: Path, module: str, imported: str, contract: str, shown: str
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
    assert f"Contracts: {len(ROOMS)} kept, 1 broken." in result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken
    assert shown in broken
