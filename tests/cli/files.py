"""What the CLI tests compare a node folder by: its files' bytes and their modes."""

from __future__ import annotations

import stat
from pathlib import Path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def node_files(directory: Path) -> dict[str, bytes]:
    """Every file of a node folder but the audit and source databases, by relative path."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.suffix != ".db"
    }
