"""A requesting department installs the SDK and its commands without the provider node's server
stack (requester/pyproject.toml), and what that install holds runs without it.

Two checks: every module the requester's distribution ships imports only its declared
dependencies (read from the code's own imports), and the shipped code runs in a Python where the
node's stack cannot be imported at all (a subprocess whose import system refuses it).
.ci/run also installs ./requester into a fresh virtual environment and runs it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUESTER = tomllib.loads((ROOT / "requester" / "pyproject.toml").read_text(encoding="utf-8"))
# Import name -> the distribution that provides it.
PROVIDED_BY = {
    "pysodium": "pysodium",
    "numpy": "numpy",
    "grpc": "grpcio",
    "google": "protobuf",
    "cryptography": "cryptography",
    "click": "click",
}
# What the node needs and a requester's install must do without.
NODE_STACK = (
    "provider_node",
    "sqlalchemy",
    "alembic",
    "pydantic",
    "prometheus_client",
    "chinese_calendar",
    "grpc_health",
    "grpc_reflection",
)


def _shipped_files() -> list[Path]:
    files = []
    for package in REQUESTER["tool"]["setuptools"]["packages"]:
        folder = ROOT / package.replace(".", "/")
        files.extend(sorted(folder.glob("*.py")))
    return files


def _top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_requester_distribution_declares_what_its_modules_import() -> None:
    declared = {
        requirement.split(">")[0].split("=")[0].split("[")[0].strip()
        for requirement in REQUESTER["project"]["dependencies"]
    }
    ours = {package.split(".")[0] for package in REQUESTER["tool"]["setuptools"]["packages"]}
    undeclared: dict[str, set[str]] = {}
    for path in _shipped_files():
        for name in _top_level_imports(path) - ours - set(sys.stdlib_module_names) - {"__future__"}:
            if name in NODE_STACK or PROVIDED_BY.get(name) not in declared:
                undeclared.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert not undeclared, f"imported but not in requester/pyproject.toml: {undeclared}"


def test_the_node_is_not_shipped_to_requesters() -> None:
    packages = REQUESTER["tool"]["setuptools"]["packages"]
    assert not [p for p in packages if p.startswith("provider_node")]
    assert "bidui_cli.operator" not in packages and "bidui_cli.compliance" not in packages
    assert not set(NODE_STACK) & {
        r.split(">")[0].replace("-", "_") for r in REQUESTER["project"]["dependencies"]
    }


_WITHOUT_THE_NODE = """
import importlib.abc, sys
REFUSED = {refused!r}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in REFUSED or name.startswith(("bidui_cli.operator",
                "bidui_cli.compliance", "bidui_cli.demo")):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Refuse())
sys.argv = ["bidui", *{argv!r}]
import client_sdk
from client_sdk import ComparisonClient, Credentials
from bidui_cli.main import main
main()
"""


def _bidui_without_the_node(*argv: str) -> subprocess.CompletedProcess[str]:
    code = _WITHOUT_THE_NODE.format(refused=NODE_STACK, argv=list(argv))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_the_department_commands_run_without_the_node() -> None:
    listed = _bidui_without_the_node("--help")
    assert listed.returncode == 0, listed.stderr
    for command in ("compare", "verify", "apply", "applications", "discrepancy", "keys"):
        assert command in listed.stdout
    helped = _bidui_without_the_node("compare", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--resource" in helped.stdout


def test_a_node_command_says_it_is_not_installed() -> None:
    for argv in (("provider", "serve", "--config", "node.toml"), ("audit", "verify"), ("demo",)):
        ran = _bidui_without_the_node(*argv)
        assert ran.returncode == 2, ran.stderr
        assert "Traceback" not in ran.stderr
        assert "this installation does not hold" in ran.stderr
        assert "pip install bidui" in ran.stderr
