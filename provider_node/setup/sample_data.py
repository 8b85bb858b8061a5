"""The example source of a new node: a SQLite ``residents`` table, and synthetic residents for it.

``bidui provider init`` creates the empty table next to the example ``node.toml`` (whose
``[[resources]]`` reads it); ``bidui demo``, the integration tests and the benchmark fill it with
synthetic Luzhou residents, so the whole product can be tried without anyone's real data.
The residents are drawn from a seeded generator: valid 18-digit resident ID numbers (a Luzhou
area code, birth date, sequence number, check character), names from common surnames and given-name
characters, and birth dates — nobody real. No sample-data library is needed, so no install of the
node carries one.
"""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

from comparator.fields import resident_id_check_character

__all__ = [
    "LUZHOU_AREA_CODES",
    "SOURCE_SCHEMA",
    "Resident",
    "add_residents",
    "create_sample_source",
    "synthetic_residents",
]

# The districts and counties of Luzhou (泸州), as in the first six digits of a resident ID.
LUZHOU_AREA_CODES = {
    "510502": "江阳区",
    "510503": "纳溪区",
    "510504": "龙马潭区",
    "510521": "泸县",
    "510522": "合江县",
    "510524": "叙永县",
    "510525": "古蔺县",
}

# The columns the example node.toml declares: its source query selects exactly these.
SOURCE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS residents ("
    "id_number TEXT NOT NULL, name TEXT NOT NULL, birth_date TEXT)"
)

#: (id number, name, birth date as YYYY-MM-DD)
Resident = tuple[str, str, str]


def create_sample_source(path: Path) -> None:
    """Create the SQLite file ``path`` with an empty ``residents`` table (kept if it exists).

    It holds records (synthetic ones, but where they are replaced by real ones it holds real
    ones): readable by the node's user only, as every file of the node that holds records.
    """
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(SOURCE_SCHEMA)


def add_residents(path: Path, residents: Iterable[Resident]) -> None:
    """Insert ``residents`` into the ``residents`` table of the SQLite file ``path``."""
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.executemany("INSERT INTO residents VALUES (?, ?, ?)", residents)


def synthetic_residents(count: int, seed: int) -> list[Resident]:
    """``count`` distinct residents (id number, name, birth date), the same for the same ``seed``.

    Birth dates fall between 1 and 95 years before 2026-01-01, so a resident is never born
    "in the future" on any machine's clock.
    """
    rng = random.Random(seed)
    codes = list(LUZHOU_AREA_CODES)
    latest = date(2025, 1, 1)
    span_days = 94 * 365
    seen: set[str] = set()
    residents: list[Resident] = []
    while len(residents) < count:
        born = latest - timedelta(days=rng.randrange(span_days))
        body = f"{rng.choice(codes)}{born:%Y%m%d}{rng.randrange(1000):03d}"
        id_number = body + resident_id_check_character(body)
        if id_number in seen:
            continue
        seen.add(id_number)
        residents.append((id_number, _name(rng), born.isoformat()))
    return residents


# Common surnames and given-name characters: enough variety for distinct-looking sample names.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方")
_GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍鹏建华飞文辉力宇晨浩然子轩欣怡梓涵"
    "一诺思远雨桐嘉怡俊杰志强国庆红梅建国丹海燕春梅永刚德明晓东玲婷雪琳佳琪慧敏秋菊宏伟金凤"
)


def _name(rng: random.Random) -> str:
    surname = rng.choice(_COMPOUND_SURNAMES) if rng.random() < 0.01 else rng.choice(_SURNAMES)
    given = "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))
    return surname + given
