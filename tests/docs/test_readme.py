"""README.md stays a front door: short, with the two commands CI runs verbatim at the top."""

from __future__ import annotations

import re

from tests.docs.conftest import ROOT

README = ROOT / "README.md"
MAX_LINES = 250
# .ci/run runs these two lines exactly as written here.
COMMANDS = [
    "# 1. install and run the demo (SQLite, generated local certificates, synthetic residents)",
    "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/bidui demo",
    "",
    "# 2. install and run the test suite",
    'python3 -m venv .venv && .venv/bin/pip install -c requirements/dev.lock -e ".[dev]" '
    "&& .venv/bin/python -m pytest",
]


def first_code_block(text: str) -> list[str]:
    match = re.search(r"^```[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert match is not None, "README.md has no fenced code block"
    return match.group(1).splitlines()


def test_the_readme_stays_short() -> None:
    lines = README.read_text("utf-8").splitlines()
    assert len(lines) < MAX_LINES, f"README.md has {len(lines)} lines: move detail into docs/"


def test_its_first_code_block_holds_exactly_the_two_commands() -> None:
    assert first_code_block(README.read_text("utf-8")) == COMMANDS


def test_ci_runs_the_same_two_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    for command in (COMMANDS[1], COMMANDS[4]):
        assert command in ci
