"""Reading the requester's CSV (with line numbers) and writing the result CSV atomically."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import pytest

from client_sdk.comparison.results import ComparisonResult, RecordResult
from client_sdk.errors import CsvInputError, CsvOutputError
from client_sdk.files.csv_io import (
    ERROR_COLUMN,
    MATCH_COLUMN,
    CsvTable,
    read_csv,
    write_results,
)


def _write(tmp_path: Path, data: bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _result(*statuses: str) -> ComparisonResult:
    records = [
        RecordResult(i, s, "id_number", "wrong check digit")  # type: ignore[arg-type]
        if s == "error"
        else RecordResult(i, s)  # type: ignore[arg-type]
        for i, s in enumerate(statuses)
    ]
    return ComparisonResult(
        records, resource_id="r", comparison_key="id_number", mode="hashed", request_id="x"
    )


def test_reads_rows_with_their_line_numbers(tmp_path: Path) -> None:
    path = _write(
        tmp_path, 'id_number,name,note\n1,张三,a\n\n2,"李\n四",b\r\n3,王五,"x,y"\n'.encode()
    )
    table = read_csv(path)
    assert table.columns == ("id_number", "name", "note")
    assert table.rows == [("1", "张三", "a"), ("2", "李\n四", "b"), ("3", "王五", "x,y")]
    # header = line 1; the blank line 3 is skipped; the quoted field spans lines 4-5
    assert table.line_numbers == [2, 4, 6]
    assert table.line_of(1) == 4
    assert not table.had_bom


def test_bom_is_accepted_and_remembered(tmp_path: Path) -> None:
    table = read_csv(_write(tmp_path, "\ufeffid_number,name\n1,张三\n".encode()))
    assert table.columns == ("id_number", "name")
    assert table.had_bom


def test_records_in_key_order_ignoring_header_spaces(tmp_path: Path) -> None:
    table = read_csv(_write(tmp_path, b"note, name ,id_number\nx,A,1\ny,B,2\n"))
    assert table.records(["id_number", "name"]) == [("1", "A"), ("2", "B")]


def test_missing_key_columns_are_named(tmp_path: Path) -> None:
    path = _write(tmp_path, b"id,name\n1,A\n")
    with pytest.raises(CsvInputError) as caught:
        read_csv(path, required_columns=["id_number", "name", "birth_date"])
    message = str(caught.value)
    assert "'id_number'" in message and "'birth_date'" in message
    assert "'name'" not in message.split("the header has")[0]
    assert caught.value.line == 1


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        (b"a,b\n1,2\n3\n", 3, "has 1 column(s), the header has 2"),
        (b"a,b\n1,2\n3,4,5\n", 3, "has 3 column(s)"),
        (b"a,b\n1,2\n\xb3\xc2,4\n", 3, "not valid UTF-8"),  # GBK bytes
        (b"\xff\xfea\x00,\x00b\x00\n\x00", 1, "UTF-16"),
        (b"a,b\n1,2\n3,4\x00\n", 3, "NUL"),
        (b'a,b\n1,"2\n\n3,4\n', 2, "malformed CSV"),
        (b'a,b\n1,"2"x\n', 2, "malformed CSV"),
        (b"a,a\n1,2\n", 1, "appears twice"),
        (b",\n1,2\n", 1, "no column names"),
    ],
)
def test_malformed_input_names_the_line(tmp_path: Path, data: bytes, line: int, words: str) -> None:
    with pytest.raises(CsvInputError) as caught:
        read_csv(_write(tmp_path, data))
    assert caught.value.line == line
    assert words in str(caught.value)
    assert f"line {line}" in str(caught.value)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(CsvInputError, match="header row"):
        read_csv(_write(tmp_path, b""))
    with pytest.raises(CsvInputError, match="header row"):
        read_csv(_write(tmp_path, b"\n\n"))


def test_header_only_is_an_empty_table(tmp_path: Path) -> None:
    table = read_csv(_write(tmp_path, b"id_number\n"))
    assert len(table) == 0
    assert table.records(["id_number"]) == []


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(CsvInputError, match="does not exist"):
        read_csv(tmp_path / "nope.csv")
    with pytest.raises(CsvInputError, match="folder"):
        read_csv(tmp_path)


def test_writes_input_columns_plus_results(tmp_path: Path) -> None:
    table = read_csv(_write(tmp_path, "id_number,name\n1,张三\n2,李四\nbad,王五\n".encode()))
    out = tmp_path / "out.csv"
    write_results(out, table, _result("matched", "not_matched", "error"))
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["id_number", "name", MATCH_COLUMN, ERROR_COLUMN],
        ["1", "张三", "matched", ""],
        ["2", "李四", "not_matched", ""],
        ["bad", "王五", "error", "id_number: wrong check digit"],
    ]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bidui-")] == []


def test_output_keeps_the_bom_and_round_trips_multiline(tmp_path: Path) -> None:
    table = read_csv(_write(tmp_path, '\ufeffid,note\n1,"a\nb"\n'.encode()))
    out = tmp_path / "out.csv"
    write_results(out, table, _result("matched"))
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")
    again = read_csv(out)
    assert again.rows == [("1", "a\nb", "matched", "")]


def test_earlier_result_columns_are_overwritten(tmp_path: Path) -> None:
    table = read_csv(_write(tmp_path, b"id,bidui_match,bidui_error\n1,error,old reason\n"))
    out = tmp_path / "out.csv"
    write_results(out, table, _result("matched"))
    assert read_csv(out).rows == [("1", "matched", "")]
    assert read_csv(out).columns == ("id", MATCH_COLUMN, ERROR_COLUMN)


def test_existing_output_is_replaced_atomically(tmp_path: Path) -> None:
    table = CsvTable(path="x", columns=("id",), rows=[("1",)], line_numbers=[2])
    out = tmp_path / "out.csv"
    out.write_text("old contents\n")
    write_results(out, table, _result("not_matched"))
    assert read_csv(out).rows == [("1", "not_matched", "")]


def test_unwritable_folder_is_an_output_error(tmp_path: Path) -> None:
    table = CsvTable(path="x", columns=("id",), rows=[("1",)], line_numbers=[2])
    with pytest.raises(CsvOutputError, match="cannot write"):
        write_results(tmp_path / "no" / "such" / "folder.csv", table, _result("matched"))
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(CsvOutputError):
            write_results(locked / "out.csv", table, _result("matched"))


def test_result_length_must_match(tmp_path: Path) -> None:
    table = CsvTable(path="x", columns=("id",), rows=[("1",), ("2",)], line_numbers=[2, 3])
    with pytest.raises(ValueError, match="1 records"):
        write_results(tmp_path / "o.csv", table, _result("matched"))
