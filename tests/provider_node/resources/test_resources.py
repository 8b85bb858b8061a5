"""provider_node.resources.catalog: the catalog model and the catalog entry a requester sees."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import pytest

from bidui.v1 import catalog_pb2 as _catalog_pb2
from comparator.canonical import CANONICAL_VERSION, Domain
from provider_node.config import ConfigError, load_config
from provider_node.core.vocabulary import SharingType
from provider_node.resources.catalog import (
    Resource,
    UnknownComparisonKeyError,
    build_catalog,
)
from provider_node.transport.catalog_proto import resource_to_proto

CONFIG = """\
[node]
department = "luzhou-psb"

[[resources]]
id = "residents"
name = "常住人口"
category = "basic"
sharing_type = "unconditional"
update_period = "P1D"
usage_conditions = "comparison only"
key_version = 3
fields = { id_number = "cn_resident_id", name = "person_name" }
keys = { "id_number" = ["id_number"], "id_number+name" = ["id_number", "name"] }
oprf_modes = ["oprf", "voprf"]
source = { csv = "residents.csv" }

[[resources]]
id = "licences"
name = "business licences"
owner_department = "luzhou-market"
category = "thematic"
sharing_type = "conditional"
modes = ["hashed"]
expose_record_count = true
fields = { uscc = "cn_uscc" }
keys = { uscc = ["uscc"] }
source = { csv = "licences.csv" }

[[resources]]
id = "sealed"
name = "sealed"
category = "departmental"
sharing_type = "not_shared"
fields = { id_number = "cn_resident_id" }
keys = { id_number = ["id_number"] }
source = { csv = "sealed.csv" }
"""


@pytest.fixture
def catalog(tmp_path: Path) -> dict[str, Resource]:
    (tmp_path / "node.toml").write_text(CONFIG, encoding="utf-8")
    return build_catalog(load_config(tmp_path / "node.toml", environ={}))


def test_catalog_model(catalog: dict[str, Resource]) -> None:
    assert list(catalog) == ["residents", "licences", "sealed"]
    residents = catalog["residents"]
    assert residents.owner_department == "luzhou-psb"
    assert residents.comparison_key("id_number+name").field_names == ("id_number", "name")
    assert residents.domain("id_number") == Domain("residents", "id_number", 3)
    assert residents.offers("blinded") and residents.offers("hashed")
    assert not catalog["licences"].offers("blinded")
    assert catalog["residents"].comparable
    assert not catalog["sealed"].comparable
    assert catalog["sealed"].sharing_type is SharingType.NOT_SHARED
    with pytest.raises(UnknownComparisonKeyError, match="has no comparison key 'phone'"):
        residents.domain("phone")


def test_catalog_entry(catalog: dict[str, Resource]) -> None:
    refreshed = _dt.datetime(2026, 3, 1, 8, 30, tzinfo=_dt.timezone(_dt.timedelta(hours=8)))
    entry = resource_to_proto(
        catalog["residents"], oprf_public_key=b"\x01" * 32, last_refresh=refreshed, record_count=7
    )
    assert entry.id == "residents"
    assert entry.name == "常住人口"
    assert entry.category == _catalog_pb2.CATEGORY_BASIC
    assert entry.sharing_type == _catalog_pb2.SHARING_TYPE_UNCONDITIONAL
    assert [(f.name, f.type) for f in entry.fields] == [
        ("id_number", "cn_resident_id"),
        ("name", "person_name"),
    ]
    assert [(k.name, list(k.fields)) for k in entry.comparison_keys] == [
        ("id_number", ["id_number"]),
        ("id_number+name", ["id_number", "name"]),
    ]
    assert list(entry.modes) == [_catalog_pb2.MODE_HASHED, _catalog_pb2.MODE_BLINDED]
    assert list(entry.oprf_modes) == [_catalog_pb2.OPRF_MODE_OPRF, _catalog_pb2.OPRF_MODE_VOPRF]
    assert entry.key_version == 3
    assert entry.oprf_public_key == b"\x01" * 32
    assert entry.oprf_suite == "ristretto255-SHA512"
    assert entry.canonical_version == CANONICAL_VERSION == 2
    assert entry.update_period == "P1D"
    assert entry.last_refresh.ToDatetime(_dt.UTC) == refreshed
    # Never a record count unless the operator allowed it.
    assert not entry.HasField("record_count")


def test_record_count_only_where_allowed(catalog: dict[str, Resource]) -> None:
    licences = resource_to_proto(
        catalog["licences"], oprf_public_key=b"\x01" * 32, last_refresh=None, record_count=12
    )
    assert licences.HasField("record_count") and licences.record_count == 12
    # Hashed-only resources publish no OPRF key; no refresh yet leaves the time unset.
    assert licences.oprf_public_key == b"" and not licences.oprf_modes
    assert not licences.HasField("last_refresh")
    assert licences.sharing_type == _catalog_pb2.SHARING_TYPE_CONDITIONAL
    sealed = resource_to_proto(
        catalog["sealed"], oprf_public_key=None, last_refresh=None, record_count=5
    )
    assert sealed.sharing_type == _catalog_pb2.SHARING_TYPE_NOT_SHARED
    assert not sealed.HasField("record_count")


def test_blinded_mode_is_modeoprf_by_default_with_no_public_key(tmp_path: Path) -> None:
    config = CONFIG.replace('oprf_modes = ["oprf", "voprf"]\n', "")
    (tmp_path / "node.toml").write_text(config, encoding="utf-8")
    residents = build_catalog(load_config(tmp_path / "node.toml", environ={}))["residents"]
    assert residents.index_modes == ("hashed", "blinded")
    assert residents.offers_oprf(False) and not residents.offers_oprf(True)
    entry = resource_to_proto(residents, oprf_public_key=b"\x01" * 32, last_refresh=None)
    assert list(entry.oprf_modes) == [_catalog_pb2.OPRF_MODE_OPRF]
    assert entry.oprf_public_key == b""  # modeOPRF needs none: only modeVOPRF's is published
    for modes, problem in (('["voprf", "voprf"]', "listed twice"), ("[]", "non-empty")):
        (tmp_path / "node.toml").write_text(
            CONFIG.replace('["oprf", "voprf"]', modes), encoding="utf-8"
        )
        with pytest.raises(ConfigError, match=problem):
            load_config(tmp_path / "node.toml", environ={})
    (tmp_path / "node.toml").write_text(CONFIG.replace('"voprf"]', '"poprf"]'), encoding="utf-8")
    with pytest.raises(ConfigError, match="poprf"):
        load_config(tmp_path / "node.toml", environ={})


def test_naive_refresh_time_is_refused(catalog: dict[str, Resource]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        resource_to_proto(
            catalog["residents"], oprf_public_key=None, last_refresh=_dt.datetime(2026, 1, 1)
        )
