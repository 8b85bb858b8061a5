"""How the CLI tests run the operator's commands and read what they recorded."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from bidui_cli.main import main


def bidui(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def provider(config: Path, *args: str | Path) -> Result:
    """``bidui provider <args> --config <config>``."""
    return bidui("provider", *args, "--config", config)


def refused(result: Result) -> str:
    """The one line a refused command printed (exit code 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def audited(config: Path) -> list[dict[str, str]]:
    exported = bidui("audit", "export", "--config", config)
    assert exported.exit_code == 0, exported.output
    return [json.loads(line) for line in exported.stdout.splitlines() if line.startswith("{")]
