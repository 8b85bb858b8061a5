"""docs/metrics.md names every Prometheus series the node exports, and nothing else.

The registry is built the way the node builds it (``provider_node.setup.runtime.open_node`` makes
``NodeMetrics`` and tracks the applications and discrepancy reports in a migrated database;
``bidui provider serve`` adds the refused TLS handshakes), and every family it collects is looked
up in the first column of the reference's tables.
"""

from __future__ import annotations

import datetime as _dt
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from provider_node.observability.metrics import NodeMetrics
from provider_node.store.engine import make_engine, migrate, session_factory
from tests.docs.conftest import DOCS

METRICS_DOC = DOCS / "metrics.md"
# A table row whose first cell is a metric name in backticks.
_ROW = re.compile(r"^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|", re.MULTILINE)
# prometheus_client's process collector reads /proc: its series exist on Linux only.
_PLATFORM_ONLY = "process_"


def documented_names(text: str) -> set[str]:
    """The metric names in the first column of the reference's tables."""
    return set(_ROW.findall(text))


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """The names Prometheus reads: a counter family ``x`` is exposed as ``x_total``."""
    return {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in registry.collect()
    }


def reference_problems(exposed: Iterable[str], documented: Iterable[str]) -> list[str]:
    """One line per series the reference lacks, and per documented series that is gone."""
    out, doc = set(exposed), set(documented)
    problems = [
        f"{name}: exported by the node, missing from docs/metrics.md" for name in sorted(out - doc)
    ]
    platform_absent = not any(name.startswith(_PLATFORM_ONLY) for name in out)
    for name in sorted(doc - out):
        if platform_absent and name.startswith(_PLATFORM_ONLY):
            continue
        problems.append(f"{name}: in docs/metrics.md, but the node no longer exports it")
    return problems


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


def node_registry(sessions: sessionmaker[Session]) -> CollectorRegistry:
    """The registry a serving node exports, built as ``open_node`` and ``serve`` build it."""
    registry = CollectorRegistry()
    metrics = NodeMetrics(
        registry, known_resources=["residents"], clock=lambda: _dt.datetime.now(_dt.UTC)
    )
    metrics.set_index("residents", "id_number", "hashed", 10, _dt.datetime.now(_dt.UTC))
    metrics.track_applications(sessions)
    metrics.track_discrepancies(sessions)
    metrics.track_handshake_failures(lambda: {"no_certificate": 1})
    return registry


def test_every_series_the_node_exports_is_documented_and_no_other(
    sessions: sessionmaker[Session],
) -> None:
    exposed = exposed_names(node_registry(sessions))
    # The collectors that read the database at scrape time did answer: their families are here.
    assert {"bidui_applications_pending", "bidui_discrepancies_pending"} <= exposed
    if sys.platform == "linux":
        assert "process_open_fds" in exposed
    problems = reference_problems(exposed, documented_names(METRICS_DOC.read_text("utf-8")))
    assert not problems, "\n".join(problems)


def test_a_series_missing_from_the_reference_is_reported(
    sessions: sessionmaker[Session],
) -> None:
    exposed = exposed_names(node_registry(sessions))
    documented = documented_names(METRICS_DOC.read_text("utf-8"))

    problems = reference_problems(exposed | {"bidui_made_up_total"}, documented)
    assert problems == ["bidui_made_up_total: exported by the node, missing from docs/metrics.md"]
    problems = reference_problems(exposed, documented | {"bidui_long_gone_total"})
    assert problems == [
        "bidui_long_gone_total: in docs/metrics.md, but the node no longer exports it"
    ]


def test_names_are_read_from_the_first_column_only() -> None:
    text = (
        "| name | type |\n| --- | --- |\n| `bidui_a_total` | counter |\n"
        "| other | `bidui_b_total` |\nprose naming `bidui_c_total`\n"
    )
    assert documented_names(text) == {"bidui_a_total"}
