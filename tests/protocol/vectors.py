"""Where the wire-contract vectors live (docs/vectors), for the tests in this folder."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VECTORS_DIR = ROOT / "docs" / "vectors"
PROTOCOL_MD = ROOT / "docs" / "PROTOCOL.md"
GENERATOR = ROOT / "scripts" / "gen_vectors.py"


@functools.cache
def load(name: str) -> Any:
    """The parsed content of ``docs/vectors/<name>.json`` (shared: do not modify it)."""
    return json.loads((VECTORS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def cases(name: str, key: str) -> list[Any]:
    """``load(name)[key]`` as pytest params with readable ids."""
    import pytest

    items = load(name)[key]
    return [pytest.param(x, id=f"{i}-{x.get('note', '')[:40]}") for i, x in enumerate(items)]


def resource_vector(resource_id: str, key_version: int) -> dict[str, Any]:
    """records.json's entry for one resource and key version (its keys and comparison keys)."""
    return next(
        r
        for r in load("records")["resources"]
        if (r["resource_id"], r["key_version"]) == (resource_id, key_version)
    )


def key_fields(resource: dict[str, Any], key_name: str) -> list[tuple[str, str]]:
    """The (field name, field type) pairs of one of ``resource``'s comparison keys, in key order."""
    entry = next(k for k in resource["comparison_keys"] if k["comparison_key"] == key_name)
    return [(name, resource["fields"][name]) for name in entry["fields"]]
