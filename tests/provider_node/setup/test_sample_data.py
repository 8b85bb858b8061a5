"""The example source of a new node: synthetic residents, valid and repeatable, in a file only the
node's user can read."""

from __future__ import annotations

import stat
from pathlib import Path

from comparator.fields import FieldType, normalize
from provider_node.setup.sample_data import (
    LUZHOU_AREA_CODES,
    add_residents,
    create_sample_source,
    synthetic_residents,
)


def test_the_source_file_is_the_node_user_s_alone(tmp_path: Path) -> None:
    path = tmp_path / "source.db"
    create_sample_source(path)
    add_residents(path, synthetic_residents(10, seed=1))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_synthetic_residents_are_valid_distinct_and_repeatable() -> None:
    residents = synthetic_residents(5_000, seed=7)
    assert residents == synthetic_residents(5_000, seed=7)
    assert residents != synthetic_residents(5_000, seed=8)
    assert len({r[0] for r in residents}) == 5_000
    for id_number, name, born in residents:
        assert normalize(FieldType.CN_RESIDENT_ID, id_number) == id_number
        assert id_number[:6] in LUZHOU_AREA_CODES
        assert born == f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}"
        assert 2 <= len(name) <= 4
