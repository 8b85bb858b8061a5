"""provider_node.resources.distributed_load and ``bidui provider load --scheduler``, on a real Dask
``LocalCluster`` (two worker processes on loopback): the indexes are byte for byte those of a local
load, invalid rows are reported the same, and the command's mistakes are one line, exit code 2."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import socket
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from provider_node.config import NodeConfig
from provider_node.resources.catalog import build_catalog
from provider_node.resources.distributed_load import (
    ClusterError,
    SourceRows,
    cluster_runner,
    distributed_runner,
)
from provider_node.resources.keys import NodeKeys
from provider_node.resources.loader import LoadReport, chunk_work, load_resource
from provider_node.setup.bootstrap import init_node
from tests.cli.running import audited, provider, refused
from tests.provider_node.resources.test_loader import person, resident_id, source_rows, write_node

distributed = pytest.importorskip("distributed")

ROWS = 2_000
CHUNK_ROWS = 150  # 14 chunks, more than the window: results come back out of order
BAD_ID_ROWS = frozenset(range(7, ROWS + 1, 211))
EMPTY_NAME_ROWS = frozenset({1, 150, 151, 1999})
BUILT_AT = _dt.datetime(2026, 11, 30, 8, 0, tzinfo=_dt.UTC)

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
answers = ["match", "verify"]
verify = { "id_number" = ["birth_date"] }
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
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A scheduler and two single-threaded worker processes on loopback; its address."""
    with distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> tuple[NodeConfig, NodeKeys]:
    return write_node(
        tmp_path_factory.mktemp("node"), CONFIG, source_rows(ROWS, BAD_ID_ROWS, EMPTY_NAME_ROWS)
    )


def built(report: LoadReport) -> dict[tuple[str, str], bytes]:
    """Every index file the load wrote, read back whole (entries and metadata)."""
    return {(index.key, index.mode): index.path.read_bytes() for index in report.indexes}


@pytest.mark.parametrize("resource_id", ["residents", "residents-csv"])
def test_a_cluster_load_writes_the_indexes_of_a_local_load(
    cluster: str, node: tuple[NodeConfig, NodeKeys], resource_id: str
) -> None:
    config, keys = node
    resource = build_catalog(config)[resource_id]
    local = load_resource(resource, config, keys, chunk_rows=CHUNK_ROWS, clock=lambda: BUILT_AT)
    local_files = built(local)
    progress: list[int] = []
    with cluster_runner(cluster, window=3) as run_chunks:
        spread = load_resource(
            resource,
            config,
            keys,
            chunk_rows=CHUNK_ROWS,
            clock=lambda: BUILT_AT,
            run_chunks=run_chunks,
            progress=progress.append,
        )
    assert sum(progress) == ROWS and len(progress) == -(-ROWS // CHUNK_ROWS)
    # Same files byte for byte (the same build time): entries, metadata, checksum.
    assert built(spread) == local_files
    modes = {"hashed", "blinded", "blinded-voprf"} if resource_id == "residents" else {"hashed"}
    assert {mode for _, mode in local_files} == modes
    if resource_id == "residents":
        assert ("verify:id_number:birth_date", "blinded") in local_files
    assert spread.source_rows == local.source_rows == ROWS
    assert [(i.key, i.mode, i.records, i.path) for i in spread.indexes] == [
        (i.key, i.mode, i.records, i.path) for i in local.indexes
    ]
    # Invalid rows: the same counts by (field, reason) and the same first row numbers.
    assert spread.invalid == local.invalid
    by_key = spread.invalid["id_number+name"]
    assert by_key.count == len(BAD_ID_ROWS | EMPTY_NAME_ROWS)
    assert sorted(by_key.by_reason.values()) == sorted([len(BAD_ID_ROWS), len(EMPTY_NAME_ROWS)])
    empty_names = next(rows for (name, _), rows in by_key.sample_rows.items() if name == "name")
    assert empty_names == sorted(EMPTY_NAME_ROWS)
    bad_ids = next(rows for (name, _), rows in by_key.sample_rows.items() if name == "id_number")
    assert bad_ids == sorted(BAD_ID_ROWS)[:10]


def test_a_failing_task_names_its_rows_and_no_value(
    cluster: str, node: tuple[NodeConfig, NodeKeys]
) -> None:
    """A worker that cannot do a chunk's work (here: a zero OPRF key) sends back only the type of
    the error; the load stops with the chunk's row numbers."""
    config, keys = node
    work = chunk_work(build_catalog(config)["residents"], keys)
    broken = dataclasses.replace(work, oprf_keys=(("blinded", bytes(32)),))
    rows = [{"id_number": person(n)[0], "name": person(n)[1], "birth_date": None} for n in (1, 2)]
    with distributed.Client(cluster, set_as_default=False) as client:
        run_chunks = distributed_runner(client, cluster, window=2)
        with pytest.raises(ClusterError) as raised:
            list(run_chunks(broken, [rows[:1], rows]))
    message = str(raised.value)
    assert message.startswith(f"a worker of the cluster at {cluster} failed on source rows ")
    assert message.endswith("Error") and person(1)[0] not in message


def test_task_arguments_show_no_value_and_no_key(node: tuple[NodeConfig, NodeKeys]) -> None:
    """A worker that logs a failed task prints its arguments' reprs."""
    config, keys = node
    resource = build_catalog(config)["residents"]
    work = chunk_work(resource, keys)
    secret = keys.hmac_key(resource.id, resource.key_version)
    assert work.hmac_key == secret and work.oprf_keys
    shown = repr(work) + repr(SourceRows([{"id_number": person(1)[0], "name": "王偉"}]))
    assert secret.hex() not in shown and repr(secret) not in shown
    assert all(repr(key) not in shown for _, key in work.oprf_keys)
    assert person(1)[0] not in shown and "王偉" not in shown
    assert "<1 source rows>" in shown


def test_an_unreachable_scheduler_is_a_cluster_error() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    expected = f"cannot reach the Dask scheduler at {address} within"
    with pytest.raises(ClusterError, match=expected), cluster_runner(address, timeout=0.5):
        pass


def test_a_scheduler_without_workers_is_a_cluster_error() -> None:
    with distributed.LocalCluster(
        n_workers=0, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as empty:
        address = empty.scheduler_address
        with (
            pytest.raises(ClusterError, match=f"the Dask scheduler at {address} has no worker"),
            cluster_runner(address, timeout=0.5),
        ):
            pass


# ---- the command ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def small_node(tmp_path: Path) -> Path:
    """``init``'s node with 3 source rows, one of them invalid; its node.toml."""
    init = init_node(tmp_path)
    with sqlite3.connect(init.source_db) as connection:
        connection.executemany(
            "INSERT INTO residents VALUES (?, ?, ?)",
            [person(1), person(2), (resident_id(3, valid=False), "張敏", "1980-01-01")],
        )
    connection.close()
    return init.config_path


def test_load_with_scheduler_builds_and_audits_the_indexes(cluster: str, small_node: Path) -> None:
    loaded = provider(small_node, "load", "--scheduler", cluster)
    assert loaded.exit_code == 0, loaded.output
    assert "residents: 3 source rows" in loaded.output
    assert "invalid for id_number: id_number:" in loaded.output and "(rows 3)" in loaded.output
    assert resident_id(3, valid=False) not in loaded.output
    folder = small_node.parent / "data" / "indexes" / "residents"
    for key in ("id_number", "id_number+name"):
        for mode in ("hashed", "blinded"):
            assert (folder / f"{key}.{mode}.idx").is_file()
    (record,) = audited(small_node)
    assert (record["action"], record["resource_id"], record["item_count"]) == (
        "index_load",
        "residents",
        3,
    )
    assert "1 invalid rows" in record["reason"]


def test_load_with_an_unreachable_scheduler_exits_2(small_node: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    result = provider(small_node, "load", "--scheduler", address, "--scheduler-timeout", "0.5")
    line = refused(result)
    assert f"cannot reach the Dask scheduler at {address} within 0.5 s" in line
    assert not (small_node.parent / "data" / "indexes").exists()


def test_load_with_scheduler_without_distributed_exits_2(
    small_node: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    line = refused(provider(small_node, "load", "--scheduler", "tcp://127.0.0.1:8786"))
    assert "--scheduler tcp://127.0.0.1:8786" in line
    assert 'pip install "bidui[cluster]"' in line


def test_load_refuses_workers_with_a_scheduler(small_node: Path) -> None:
    line = refused(
        provider(small_node, "load", "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2")
    )
    assert "--workers" in line and "dask worker" in line


def test_load_with_workers_runs_locally(small_node: Path) -> None:
    loaded = provider(small_node, "load", "--workers", "1")
    assert loaded.exit_code == 0, loaded.output
    assert "residents: 3 source rows" in loaded.output
