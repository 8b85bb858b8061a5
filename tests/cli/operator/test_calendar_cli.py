"""``bidui provider calendar``: the years the node counts working days with and where each comes
from, when they run out, and the regulation's deadlines from a given day; a day whose deadline
falls outside the calendar is one line and exit code 2. The clock is fixed at 2026-12-01."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from provider_node.core.workdays import announce
from provider_node.setup.bootstrap import init_node
from tests.cli.running import provider, refused
from tests.provider_node.core.test_announced_years import LAST, MAKE_UP, NEXT, notice_toml

NOW = dt.datetime(LAST, 12, 1, 2, 0, tzinfo=dt.UTC)  # 10:00 in China, 31 days before the end


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr("bidui_cli.terminal.clock", lambda: NOW)
    yield init_node(tmp_path).config_path
    announce(())  # one calendar per process: leave the package's alone for other tests


def test_the_package_alone(config: Path) -> None:
    shown = provider(config, "calendar", "--from", f"{LAST}-12-21")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].endswith(f"–{LAST}")
    assert lines[1].split()[:2] == [f"{lines[0].split()[-1][:4]}–{LAST}", "chinese-calendar"]
    assert f"runs out after {LAST}-12-31 (China time), 30 days from now" in lines[2]
    assert "3 working days from" in lines[3] and "5 working days from" in lines[4]
    late = refused(provider(config, "calendar", "--from", f"{LAST}-12-30"))
    assert f"{NEXT}-01-01 is outside the working-day calendar" in late


def test_an_announced_year_and_its_source(config: Path) -> None:
    with config.open("a", encoding="utf-8") as handle:
        handle.write(notice_toml())
    shown = provider(config, "calendar", "--from", f"{LAST}-12-31")
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[0].endswith(f"–{NEXT}")
    assert f"{NEXT}       {config} [[calendar.years]]: 国办发明电〔示例〕1号" in shown.output
    assert "(7 days off, 1 make-up working days)" in shown.output
    days = (dt.date(NEXT, 1, 8) + dt.timedelta(n) for n in range(14))
    working = [d for d in days if d.weekday() < 5 or d == MAKE_UP]
    assert f"5 working days from {LAST}-12-31: {working[4]}" in shown.output


def test_a_bad_notice_is_one_line(config: Path) -> None:
    with config.open("a", encoding="utf-8") as handle:
        handle.write(notice_toml(NEXT + 1))
    line = refused(provider(config, "calendar"))
    assert f"calendar.years[{NEXT + 1}]: {NEXT}-01-01 is not in {NEXT + 1}" in line
