"""Where the wire-contract vectors live (docs/vectors), for the tests in this folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VECTORS_DIR = ROOT / "docs" / "vectors"
PROTOCOL_MD = ROOT / "docs" / "PROTOCOL.md"
GENERATOR = ROOT / "scripts" / "gen_vectors.py"


def load(name: str) -> Any:
    """The parsed content of ``docs/vectors/<name>.json``."""
    return json.loads((VECTORS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def cases(name: str, key: str) -> list[Any]:
    """``load(name)[key]`` as pytest params with readable ids."""
    import pytest

    items = load(name)[key]
    return [pytest.param(x, id=f"{i}-{x.get('note', '')[:40]}") for i, x in enumerate(items)]
