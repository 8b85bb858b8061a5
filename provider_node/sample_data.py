"""The example source of a new node: a SQLite ``residents`` table, and synthetic residents for it.

``bidui provider init`` creates the empty table next to the example ``node.toml`` (whose
``[[resources]]`` reads it); ``bidui demo``, the integration tests and the benchmark fill it with
synthetic Luzhou residents, so the whole product can be tried without anyone's real data.
The residents are made with Faker's ``zh_CN`` locale: valid 18-digit resident ID numbers (area
code, birth date, sequence number, check character), names and birth dates — nobody real.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

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
    """Create the SQLite file ``path`` with an empty ``residents`` table (kept if it exists)."""
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(SOURCE_SCHEMA)


def add_residents(path: Path, residents: Iterable[Resident]) -> None:
    """Insert ``residents`` into the ``residents`` table of the SQLite file ``path``."""
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.executemany("INSERT INTO residents VALUES (?, ?, ?)", residents)


def synthetic_residents(count: int, seed: int) -> list[Resident]:
    """``count`` distinct residents (id number, name, birth date) made with Faker's zh_CN locale."""
    from faker import Faker  # imported here: Faker's locale data takes a moment to load

    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    codes = list(LUZHOU_AREA_CODES)
    seen: set[str] = set()
    residents: list[Resident] = []
    while len(residents) < count:
        area = fake.random_element(codes)
        id_number = fake.ssn(min_age=1, max_age=95, area_code=area)  # type: ignore[call-arg]
        if id_number in seen:
            continue
        seen.add(id_number)
        birth = f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}"
        residents.append((id_number, fake.name(), birth))
    return residents
