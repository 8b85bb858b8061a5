"""``bidui resources``: the provider's catalog from a requesting department, over real mutual TLS;
freshness judged against each resource's update period; mistakes in one line."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest

from tests.cli.department.test_department_cli import connection
from tests.cli.running import bidui, refused
from tests.integration.conftest import NodeUnderTest, start


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    running = start(tmp_path_factory.mktemp("resources"))
    yield running
    running.started.stop(grace=1.0)


def test_the_catalog_lists_every_resource_with_its_terms(node: NodeUnderTest) -> None:
    listed = bidui("resources", *connection(node))
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split()[:5] == ["id", "sharing", "modes", "answers", "updated"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["residents"][1:4] == ["unconditional", "hashed,blinded", "match"]
    assert rows["sealed_records"][1] == "not_shared"
    as_json = json.loads(bidui("resources", *connection(node), "--json").output)
    population = next(r for r in as_json if r["id"] == "population")
    assert set(population["answers"]) == {"match", "verify", "count"}
    assert population["stale"] is False and population["last_refresh"]


def test_one_resource_whole(node: NodeUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = bidui("resources", "show", "residents", *connection(node))
    assert shown.exit_code == 0, shown.output
    labels = {line.split("  ")[0].strip(): line for line in shown.output.splitlines()}
    assert labels["resource"].split()[1] == "residents"
    assert "unconditional: any department may compare" in labels["sharing"]
    assert "id_number" in labels["key"]
    assert "STALE" not in shown.output
    # Two days on, a daily resource's data is older than its update period: the clerk is told.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    monkeypatch.setattr("bidui_cli.terminal.clock", lambda: later)
    stale = bidui("resources", *connection(node), "show", "residents")
    assert "STALE: older than its update period" in stale.output


def test_mistakes_are_one_line(node: NodeUnderTest) -> None:
    assert "nope" in refused(bidui("resources", *connection(node), "show", "nope"))
    assert "show ID" in refused(bidui("resources", *connection(node), "residents"))
    assert "show ID" in refused(bidui("resources", *connection(node), "show"))
