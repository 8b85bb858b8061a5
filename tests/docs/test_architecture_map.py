"""docs/architecture.md maps every room of the code, and the documents cite only what exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.conftest import DOCS, ROOT, documents

ARCHITECTURE = DOCS / "architecture.md"
PACKAGES = ("provider_node", "client_sdk", "bidui_cli")
# A path into the code, as the documents cite it: provider_node/comparison/node.py, bidui_cli/.
_CITED = re.compile(r"(?<![\w./-])((?:provider_node|client_sdk|bidui_cli|comparator)/[\w./-]*)")
# A relative markdown link: [text](target) not starting with a scheme or an anchor.
_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")


def rooms() -> list[str]:
    """Every subpackage of the node, the SDK and the command, and their top-level modules, and
    every module of the comparator, as the map names them."""
    names: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).iterdir()):
            if path.is_dir() and (path / "__init__.py").exists():
                names.append(f"{package}/{path.name}/")
            elif path.suffix == ".py" and path.name != "__init__.py":
                names.append(f"{package}/{path.name}")
    for path in sorted((ROOT / "comparator").iterdir()):
        if path.is_dir() and (path / "__init__.py").exists():
            names.append(f"comparator/{path.name}/")
        elif path.suffix == ".py" and path.name != "__init__.py":
            names.append(f"comparator/{path.name}")
    return names


def cited_paths(text: str) -> set[str]:
    return {match.rstrip(".,:;") for match in _CITED.findall(text)}


def missing_paths(document: Path) -> list[str]:
    return sorted(p for p in cited_paths(document.read_text("utf-8")) if not (ROOT / p).exists())


def broken_links(document: Path) -> list[str]:
    broken = []
    for target in _LINK.findall(document.read_text("utf-8")):
        path = target.split("#", 1)[0]
        if path and not (document.parent / path).exists():
            broken.append(target)
    return broken


def test_the_map_names_every_room() -> None:
    text = ARCHITECTURE.read_text("utf-8")
    absent = [name for name in rooms() if f"`{name}`" not in text]
    assert not absent, f"docs/architecture.md does not map: {', '.join(absent)}"


def test_the_rooms_are_found() -> None:
    found = rooms()
    assert "provider_node/comparison/" in found and "comparator/index.py" in found
    assert "client_sdk/client.py" in found and "bidui_cli/operator/" in found


@pytest.mark.parametrize("document", documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_cited_code_path_exists(document: Path) -> None:
    missing = missing_paths(document)
    assert not missing, f"{document.relative_to(ROOT)} cites paths that do not exist: {missing}"


@pytest.mark.parametrize("document", documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(document: Path) -> None:
    broken = broken_links(document)
    assert not broken, f"{document.relative_to(ROOT)} links to what does not exist: {broken}"


def test_an_old_path_is_caught(tmp_path: Path) -> None:
    old = tmp_path / "old.md"
    old.write_text(
        "See provider_node/node.py and `provider_node/store.py`, then [x](nowhere.md); "
        "provider_node/comparison/node.py is fine.\n",
        "utf-8",
    )
    assert missing_paths(old) == ["provider_node/node.py", "provider_node/store.py"]
    assert broken_links(old) == ["nowhere.md"]
