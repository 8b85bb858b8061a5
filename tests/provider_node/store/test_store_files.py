"""The node's store files on disk: readable by the node's user only."""

from __future__ import annotations

from pathlib import Path

from provider_node.store.engine import make_engine, migrate


def test_the_sqlite_audit_database_is_for_its_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "audit.db"
    engine = make_engine(f"sqlite:///{database}")
    migrate(engine)
    engine.dispose()
    for path in tmp_path.glob("audit.db*"):
        assert path.stat().st_mode & 0o777 == 0o600, path
    database.chmod(0o644)  # loosened by hand: the node tightens it again when it opens it
    make_engine(f"sqlite:///{database}").dispose()
    assert database.stat().st_mode & 0o777 == 0o600
