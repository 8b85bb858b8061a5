"""``bidui compare``: help, and the user mistakes caught before any network call (exit code 2,
one line, no traceback). Comparisons against a real node are in tests/integration/."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bidui_cli.department.compare import compare


def _args(tmp_path: Path, input_path: Path) -> list[str]:
    return [
        "--input",
        str(input_path),
        "--resource",
        "residents",
        "--key",
        "id_number",
        "--output",
        str(tmp_path / "out.csv"),
        "--purpose",
        "test",
        "--target",
        "127.0.0.1:1",
        "--ca-cert",
        str(tmp_path / "ca.pem"),
        "--cert",
        str(tmp_path / "client.pem"),
        "--key-file",
        str(tmp_path / "client.key"),
    ]


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(compare, ["--help"])
    assert result.exit_code == 0
    for words in ["--input", "--purpose", "BIDUI_TARGET", "Example:", "bidui compare", "Exit"]:
        assert words in result.output


def test_missing_input_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(compare, _args(tmp_path, tmp_path / "none.csv"))
    assert result.exit_code == 2
    assert "none.csv: file does not exist" in result.output
    assert "Traceback" not in result.output


def test_bad_csv_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"id_number,name\n1,a\n2\n")
    result = CliRunner().invoke(compare, _args(tmp_path, path))
    assert result.exit_code == 2
    assert "line 3" in result.output


def test_missing_certificate(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"id_number\n1\n")
    result = CliRunner().invoke(compare, _args(tmp_path, path))
    assert result.exit_code == 2
    assert "CA certificate file" in result.output and "does not exist" in result.output


@pytest.mark.parametrize("missing", ["--purpose", "--target"])
def test_required_options(tmp_path: Path, missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BIDUI_TARGET", raising=False)
    args = _args(tmp_path, tmp_path / "in.csv")
    at = args.index(missing)
    del args[at : at + 2]
    result = CliRunner().invoke(compare, args)
    assert result.exit_code == 2
    assert missing in result.output
