"""provider_node.resources.loader: indexes built from SQL and CSV sources answer membership
correctly."""

from __future__ import annotations

import csv
import datetime as _dt
import sqlite3
from collections.abc import Collection, Sequence
from pathlib import Path

import pytest

from comparator.canonical import CANONICAL_VERSION, Record, encode_records
from comparator.index import ENTRY_LENGTH, MatchIndex
from comparator.keyed_hash import KeyedHasher
from comparator.oprf import Mode, OprfClient, OprfServer, VoprfClient, VoprfServer
from provider_node.config import NodeConfig, load_config
from provider_node.resources.catalog import Resource, build_catalog
from provider_node.resources.keys import NodeKeys
from provider_node.resources.loader import (
    IndexMissingError,
    index_built_at,
    index_path,
    load_indexes,
    load_resource,
)
from provider_node.resources.source import SourceError, count_source_rows

ROWS = 200
# Source rows (1-based) with a wrong check digit, and one with an empty name.
BAD_ID_ROWS = (17, 150)
EMPTY_NAME_ROW = 88
SURNAMES = "王李張劉陳楊黃趙吳周"
GIVEN = ["偉", "芳", "娜", "秀英", "敏", "靜", "麗", "強", "磊", "軍"]
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id(serial: int, *, valid: bool = True) -> str:
    """An 18-digit resident id in Luzhou's Jiangyang district (510502) with its GB 11643 check."""
    born = _dt.date(1950, 1, 1) + _dt.timedelta(days=serial * 97 % 25_000)
    body = f"510502{born:%Y%m%d}{serial % 1000:03d}"
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11]
    if not valid:
        check = "10X98765432"[("10X98765432".index(check) + 1) % 11]
    return body + check


def person(serial: int) -> tuple[str, str, str]:
    born = _dt.date(1950, 1, 1) + _dt.timedelta(days=serial * 97 % 25_000)
    name = SURNAMES[serial % 10] + GIVEN[(serial // 10) % 10]
    return resident_id(serial), name, born.isoformat()


def source_rows(
    count: int = ROWS,
    bad_ids: Collection[int] = BAD_ID_ROWS,
    empty_names: Collection[int] = (EMPTY_NAME_ROW,),
) -> list[tuple[str, str, str]]:
    """(id_number, name, birth_date) of rows 1 to ``count``: a wrong check digit in the rows
    ``bad_ids``, an empty name in the rows ``empty_names``."""
    rows = []
    for row in range(1, count + 1):
        id_number, name, born = person(row)
        if row in bad_ids:
            id_number = resident_id(row, valid=False)
        if row in empty_names:
            name = ""
        rows.append((id_number, name, born))
    return rows


CONFIG = """\
[node]
department = "luzhou-psb"
data_dir = "data"

[[resources]]
id = "residents"
name = "residents (SQL)"
category = "basic"
sharing_type = "unconditional"
fields = { id_number = "cn_resident_id", name = "person_name", birth_date = "date" }
keys = { "id_number" = ["id_number"], "id_number+name" = ["id_number", "name"] }
oprf_modes = ["oprf", "voprf"]
source = { url = "sqlite:///source.db", query = "SELECT * FROM residents ORDER BY rowid" }

[[resources]]
id = "residents-csv"
name = "residents (CSV)"
category = "basic"
sharing_type = "unconditional"
modes = ["hashed"]
fields = { id_number = "cn_resident_id", name = "person_name" }
keys = { "id_number+name" = ["id_number", "name"] }
source = { csv = "residents.csv" }

[[resources]]
id = "sealed"
name = "not shared"
category = "departmental"
sharing_type = "not_shared"
fields = { id_number = "cn_resident_id" }
keys = { "id_number" = ["id_number"] }
source = { csv = "absent.csv" }
"""


def write_node(
    directory: Path, config: str, rows: list[tuple[str, str, str]]
) -> tuple[NodeConfig, NodeKeys]:
    """A node folder with ``config`` as its node.toml, ``rows`` (id_number, name, birth_date) as
    the SQLite table ``residents`` in source.db and as residents.csv (columns in another order),
    and fresh keys."""
    (directory / "node.toml").write_text(config, encoding="utf-8")
    with sqlite3.connect(directory / "source.db") as connection:
        connection.execute("CREATE TABLE residents (id_number TEXT, name TEXT, birth_date TEXT)")
        connection.executemany("INSERT INTO residents VALUES (?, ?, ?)", rows)
    connection.close()
    with (directory / "residents.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "id_number", "birth_date"])
        writer.writerows((name, id_number, born) for id_number, name, born in rows)
    return load_config(directory / "node.toml", environ={}), NodeKeys.generate(directory / "keys")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> tuple[NodeConfig, NodeKeys]:
    return write_node(tmp_path_factory.mktemp("node"), CONFIG, source_rows())


def catalog(config: NodeConfig) -> dict[str, Resource]:
    return build_catalog(config)


def hashed_lookup(
    index: MatchIndex, keys: NodeKeys, resource: Resource, key: str, records: Sequence[Record]
) -> list[bool]:
    domain = resource.domain(key)
    batch = encode_records(domain, resource.comparison_key(key), records)
    assert not batch.errors
    hasher = KeyedHasher(keys.hmac_key(resource.id, resource.key_version), domain)
    return [bool(hit) for hit in index.contains(hasher.tags(batch.encoded))]


def blinded_lookup(
    index: MatchIndex, keys: NodeKeys, resource: Resource, key: str, records: Sequence[Record]
) -> list[bool]:
    """modeOPRF, under modeOPRF's key (the ``blinded`` index)."""
    batch = encode_records(resource.domain(key), resource.comparison_key(key), records)
    assert not batch.errors
    secret, _ = keys.oprf_key_pair(resource.id, resource.key_version, Mode.OPRF)
    client = OprfClient()
    blind = client.blind(batch.encoded)
    outputs = client.finalize(blind.state, OprfServer(secret).blind_evaluate(blind.message))
    return [bool(hit) for hit in index.contains([o[:ENTRY_LENGTH] for o in outputs])]


def voprf_lookup(
    index: MatchIndex, keys: NodeKeys, resource: Resource, key: str, records: Sequence[Record]
) -> list[bool]:
    """modeVOPRF, under modeVOPRF's key (the ``blinded-voprf`` index)."""
    batch = encode_records(resource.domain(key), resource.comparison_key(key), records)
    assert not batch.errors
    secret, public = keys.oprf_key_pair(resource.id, resource.key_version, Mode.VOPRF)
    client = VoprfClient(public)
    blind = client.blind(batch.encoded)
    outputs = client.finalize(blind.state, VoprfServer(secret).blind_evaluate(blind.message))
    # Outputs are 64 bytes; the index keeps (and is queried with) their first ENTRY_LENGTH.
    return [bool(hit) for hit in index.contains([o[:ENTRY_LENGTH] for o in outputs])]


def test_sql_source_builds_indexes_that_answer_membership(
    node: tuple[NodeConfig, NodeKeys],
) -> None:
    config, keys = node
    resource = catalog(config)["residents"]
    progress: list[int] = []
    report = load_resource(resource, config, keys, progress=progress.append, chunk_rows=64)
    assert sum(progress) == ROWS and len(progress) == 4
    assert report.source_rows == ROWS
    assert {(i.key, i.mode) for i in report.indexes} == {
        ("id_number", "hashed"),
        ("id_number", "blinded"),
        ("id_number", "blinded-voprf"),
        ("id_number+name", "hashed"),
        ("id_number+name", "blinded"),
        ("id_number+name", "blinded-voprf"),
    }
    by_key = {(i.key, i.mode): i.records for i in report.indexes}
    assert by_key[("id_number", "hashed")] == ROWS - len(BAD_ID_ROWS)
    assert by_key[("id_number+name", "blinded")] == ROWS - len(BAD_ID_ROWS) - 1
    for item in report.indexes:
        assert item.path == index_path(config, "residents", item.key, item.mode)
        assert item.path.is_file()

    indexes = load_indexes(resource, config, keys)
    present = [{"id_number": person(n)[0], "name": person(n)[1]} for n in (1, 2, 99, 200)]
    absent = [{"id_number": person(n)[0], "name": person(n)[1]} for n in (201, 555)]
    # Present id with another name: found by id_number, not by id_number+name.
    renamed = [{"id_number": person(5)[0], "name": "錢多多"}]
    records = present + absent + renamed
    expected_id = [True] * 4 + [False] * 2 + [True]
    expected_both = [True] * 4 + [False] * 2 + [False]
    lookups = (
        ("hashed", hashed_lookup),
        ("blinded", blinded_lookup),
        ("blinded-voprf", voprf_lookup),
    )
    for mode, lookup in lookups:
        assert lookup(indexes[("id_number", mode)], keys, resource, "id_number", records) == (
            expected_id
        )
        assert (
            lookup(indexes[("id_number+name", mode)], keys, resource, "id_number+name", records)
            == expected_both
        )


def test_invalid_rows_are_counted_with_row_numbers_not_values(
    node: tuple[NodeConfig, NodeKeys],
) -> None:
    config, keys = node
    resource = catalog(config)["residents"]
    report = load_resource(resource, config, keys, chunk_rows=50)
    by_id = report.invalid["id_number"]
    assert by_id.count == len(BAD_ID_ROWS)
    ((field, reason),) = by_id.by_reason
    assert field == "id_number"
    assert by_id.sample_rows[(field, reason)] == list(BAD_ID_ROWS)
    both = report.invalid["id_number+name"]
    assert both.count == len(BAD_ID_ROWS) + 1
    name_reasons = [label for label in both.by_reason if label[0] == "name"]
    assert len(name_reasons) == 1
    assert both.sample_rows[name_reasons[0]] == [EMPTY_NAME_ROW]
    assert report.invalid_rows == 3
    bad_values = {resident_id(row, valid=False) for row in BAD_ID_ROWS}
    assert not any(value in reason for value in bad_values for _, reason in by_id.by_reason)
    index = MatchIndex.load(index_path(config, "residents", "id_number", "blinded"))
    assert index.metadata["invalid_rows"] == "2"
    assert index.metadata["source_rows"] == str(ROWS)
    assert index.metadata["key_version"] == "1"
    built_at = index_built_at(index)
    assert built_at is not None and built_at.tzinfo is not None
    assert built_at == report.built_at
    assert not any(value in str(index.metadata) for value in bad_values)


def test_csv_source_with_reordered_header(node: tuple[NodeConfig, NodeKeys]) -> None:
    config, keys = node
    resource = catalog(config)["residents-csv"]
    assert count_source_rows(resource) == ROWS
    report = load_resource(resource, config, keys)
    assert [(i.key, i.mode, i.records) for i in report.indexes] == [
        ("id_number+name", "hashed", ROWS - len(BAD_ID_ROWS) - 1)
    ]
    assert report.invalid["id_number+name"].count == 3
    indexes = load_indexes(resource, config, keys)
    assert set(indexes) == {("id_number+name", "hashed")}
    records = [person(3)[:2], person(300)[:2]]
    assert hashed_lookup(
        indexes[("id_number+name", "hashed")], keys, resource, "id_number+name", records
    ) == [True, False]


def test_not_shared_resources_get_no_index(node: tuple[NodeConfig, NodeKeys]) -> None:
    config, keys = node
    resource = catalog(config)["sealed"]
    report = load_resource(resource, config, keys)
    assert report.indexes == ()
    assert "not shared" in report.skipped_reason
    assert load_indexes(resource, config) == {}


def test_missing_or_stale_index_tells_the_operator_what_to_run(
    node: tuple[NodeConfig, NodeKeys], tmp_path: Path
) -> None:
    config, keys = node
    resource = catalog(config)["residents"]
    load_resource(resource, config, keys)
    moved = NodeConfig(
        path=config.path,
        node=type(config.node)(**{**config.node.__dict__, "data_dir": tmp_path}),
        tls=config.tls,
        keys=config.keys,
        audit=config.audit,
        resources=config.resources,
    )
    with pytest.raises(IndexMissingError, match=r"run `bidui provider load --config .* --resource"):
        load_indexes(resource, moved)
    rotated = Resource(**{**resource.__dict__, "key_version": 2})
    with pytest.raises(IndexMissingError, match="key version 1, the configuration says 2"):
        load_indexes(rotated, config)
    other_keys = NodeKeys(tmp_path, bytes(32), bytes(32))
    with pytest.raises(IndexMissingError, match="other keys"):
        load_indexes(resource, config, other_keys)


def test_a_blinded_index_built_under_the_voprf_key_is_refused_with_the_load_command(
    node: tuple[NodeConfig, NodeKeys],
) -> None:
    """Indexes built before modeOPRF had its own key (VOPRF's, under the name ``blinded``)."""
    config, keys = node
    resource = catalog(config)["residents"]
    load_resource(resource, config, keys)
    old = index_path(config, "residents", "id_number", "blinded-voprf")
    path = index_path(config, "residents", "id_number", "blinded")
    metadata = {**MatchIndex.load(old).metadata, "mode": "blinded"}
    assert metadata["key_id"] != MatchIndex.load(path).metadata["key_id"]
    MatchIndex.build([], metadata=metadata).save(path)
    command = f"run `bidui provider load --config {config.path} --resource residents`"
    try:
        with pytest.raises(IndexMissingError) as refused:
            load_indexes(resource, config, keys)
        assert str(refused.value) == (
            f"resource 'residents': index {path} was built under other keys than the node's "
            f"current blinded key: {command}"
        )
    finally:
        load_resource(resource, config, keys)
    load_indexes(resource, config, keys)


def test_an_index_of_another_canonical_version_is_refused_with_the_load_command(
    node: tuple[NodeConfig, NodeKeys],
) -> None:
    config, keys = node
    resource = catalog(config)["residents"]
    load_resource(resource, config, keys)
    path = index_path(config, "residents", "id_number", "blinded")
    metadata = MatchIndex.load(path).metadata
    assert metadata["canonical_version"] == str(CANONICAL_VERSION)
    command = f"run `bidui provider load --config {config.path} --resource residents`"
    try:
        for stamped in (str(CANONICAL_VERSION + 1), None):
            old = {k: v for k, v in metadata.items() if k != "canonical_version"}
            if stamped is not None:
                old["canonical_version"] = stamped
            MatchIndex.build([], metadata=old).save(path)
            # An index built before the version was stamped on indexes was built under version 1.
            built_under = stamped or "1"
            if built_under == str(CANONICAL_VERSION):
                load_indexes(resource, config, keys)
                continue
            with pytest.raises(IndexMissingError) as refused:
                load_indexes(resource, config, keys)
            message = str(refused.value)
            assert f"{path} was built under canonical version {built_under}" in message
            assert f"under version {CANONICAL_VERSION}: {command}" in message
    finally:
        load_resource(resource, config, keys)


def test_source_problems_are_one_clear_error(
    node: tuple[NodeConfig, NodeKeys], tmp_path: Path
) -> None:
    config, keys = node
    resource = catalog(config)["residents"]
    bad_query = Resource(
        **{
            **resource.__dict__,
            "source": type(resource.source)(url=resource.source.url, query="SELECT * FROM nope"),
        }
    )
    with pytest.raises(SourceError, match="reading the source failed: no such table: nope"):
        load_resource(bad_query, config, keys)
    missing_column = Resource(
        **{
            **resource.__dict__,
            "source": type(resource.source)(
                url=resource.source.url, query="SELECT id_number FROM residents"
            ),
        }
    )
    with pytest.raises(SourceError, match="has no column 'name'"):
        load_resource(missing_column, config, keys)
    no_file = Resource(
        **{**resource.__dict__, "source": type(resource.source)(csv=tmp_path / "gone.csv")}
    )
    with pytest.raises(SourceError, match="cannot open source CSV"):
        load_resource(no_file, config, keys)
    assert count_source_rows(no_file) is None
