"""What the documentation tests share: where the repository and its documents are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def documents() -> list[Path]:
    """The documents whose cited paths and links are checked: README.md, docs/*.md and
    docs/operator/*.md."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md")), *sorted(DOCS.glob("operator/*.md"))]
