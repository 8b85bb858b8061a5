"""The index-build benchmark's source: N synthetic residents, generated with numpy in blocks.

Each row is a Luzhou resident ID number (18 characters: area code, birth date 1930-2005, sequence
number, ISO 7064 MOD 11-2 check character) and a three-character name. The ID numbers are
distinct: row ``i`` takes number ``(i * STRIDE + OFFSET) mod SPACE`` of the space of (area code,
birth date, sequence number), ``STRIDE`` coprime to ``SPACE``. One row in ``INVALID_EVERY`` (rows
``i`` with ``i % INVALID_EVERY == INVALID_EVERY - 1``) is invalid, alternately with a wrong check
character and with an impossible birth date (month 13, right check character), so the loader's
invalid-row path is exercised with two reasons; the index then holds ``n - invalid_rows(n)``.

The rows go to a CSV file (``id_number,name`` header, UTF-8) or a SQLite table ``residents``.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from provider_node.setup.sample_data import LUZHOU_AREA_CODES

INVALID_EVERY = 1000
BLOCK_ROWS = 1 << 20
ROW_BYTES = 29  # 18 ID characters, a comma, 3 three-byte UTF-8 characters, a newline

_CODES = np.frombuffer("".join(LUZHOU_AREA_CODES).encode("ascii"), dtype=np.uint8).reshape(-1, 6)
_DAYS = np.arange("1930-01-01", "2006-01-01", dtype="datetime64[D]")
_DATES = np.frombuffer(
    "".join(str(day).replace("-", "") for day in _DAYS.tolist()).encode("ascii"), dtype=np.uint8
).reshape(-1, 8)
_SEQUENCES = 1000
SPACE = len(_CODES) * len(_DATES) * _SEQUENCES
_STRIDE = 104_729_137  # coprime to SPACE (checked below), so rows get distinct numbers
_OFFSET = 12_345_678
assert math.gcd(_STRIDE, SPACE) == 1
_WEIGHTS = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int64)
_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
_SURNAMES = np.frombuffer("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗".encode(), dtype=np.uint8)
_GIVEN = np.frombuffer("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂".encode(), dtype=np.uint8)


def invalid_rows(n: int) -> int:
    """How many of ``n`` rows are invalid."""
    return n // INVALID_EVERY


def _ids(start: int, stop: int) -> npt.NDArray[np.uint8]:
    """Rows ``start`` to ``stop`` - 1 as ASCII codes, shape (rows, 18)."""
    i = np.arange(start, stop, dtype=np.int64)
    number = (i * _STRIDE + _OFFSET) % SPACE
    rest, sequence = np.divmod(number, _SEQUENCES)
    code, date = np.divmod(rest, len(_DATES))
    out = np.empty((len(i), 18), dtype=np.uint8)
    out[:, 0:6] = _CODES[code]
    out[:, 6:14] = _DATES[date]
    out[:, 14] = sequence // 100
    out[:, 15] = sequence // 10 % 10
    out[:, 16] = sequence % 10
    out[:, 14:17] += ord("0")
    bad = np.flatnonzero(i % INVALID_EVERY == INVALID_EVERY - 1)
    bad_date = bad[(i[bad] // INVALID_EVERY) % 2 == 1]
    out[bad_date, 10:12] = np.frombuffer(b"13", dtype=np.uint8)  # month 13
    weighted = (out[:, :17].astype(np.int64) - ord("0")) @ _WEIGHTS
    out[:, 17] = _CHECK[weighted % 11]  # "10X98765432"[weighted sum mod 11]
    bad_check = bad[(i[bad] // INVALID_EVERY) % 2 == 0]
    out[bad_check, 17] = _CHECK[(weighted[bad_check] + 1) % 11]
    return out


def _names(rng: np.random.Generator, rows: int) -> npt.NDArray[np.uint8]:
    """``rows`` names of three characters as UTF-8, shape (rows, 9)."""
    out = np.empty((rows, 9), dtype=np.uint8)
    for column, table in ((0, _SURNAMES), (1, _GIVEN), (2, _GIVEN)):
        pick = rng.integers(0, len(table) // 3, size=rows) * 3
        for byte in range(3):
            out[:, column * 3 + byte] = table[pick + byte]
    return out


def _blocks(n: int, seed: int) -> Iterator[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]]:
    rng = np.random.default_rng(seed)
    for start in range(0, n, BLOCK_ROWS):
        stop = min(n, start + BLOCK_ROWS)
        yield _ids(start, stop), _names(rng, stop - start)


def write_csv(path: Path, n: int, seed: int) -> None:
    """``n`` rows to ``path`` (``id_number,name`` header)."""
    with path.open("wb") as out:
        out.write(b"id_number,name\n")
        for ids, names in _blocks(n, seed):
            rows = np.empty((len(ids), ROW_BYTES), dtype=np.uint8)
            rows[:, :18] = ids
            rows[:, 18] = ord(",")
            rows[:, 19:28] = names
            rows[:, 28] = ord("\n")
            out.write(rows.tobytes())


def write_sqlite(path: Path, n: int, seed: int) -> None:
    """``n`` rows to a table ``residents (id_number, name)`` of a new SQLite database."""
    path.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("CREATE TABLE residents (id_number TEXT NOT NULL, name TEXT NOT NULL)")
        for ids, names in _blocks(n, seed):
            id_text = ids.tobytes().decode("ascii")
            name_text = names.tobytes().decode("utf-8")
            db.executemany(
                "INSERT INTO residents VALUES (?, ?)",
                (
                    (id_text[k * 18 : k * 18 + 18], name_text[k * 3 : k * 3 + 3])
                    for k in range(len(ids))
                ),
            )
        db.commit()
