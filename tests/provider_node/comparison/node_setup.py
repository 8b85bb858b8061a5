"""A ProviderNode without gRPC on a SQLite store, and what its tests drive it with."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import NamedTuple

from prometheus_client import CollectorRegistry

from comparator.canonical import ComparisonKey, Domain, encode_record
from comparator.index import MatchIndex
from comparator.oprf import (
    BlindResult,
    Mode,
    OprfClient,
    OprfServer,
    VoprfClient,
    VoprfServer,
    generate_key_pair,
)
from provider_node.access.policy import AccessPolicy, ItemsPerMinute
from provider_node.audit.log import AuditLog
from provider_node.comparison.node import NodeLimits, ProviderNode
from provider_node.config import load_config
from provider_node.core.messages import Header
from provider_node.core.vocabulary import OprfMode
from provider_node.identity.auth import Caller
from provider_node.observability.metrics import NodeMetrics
from provider_node.resources.catalog import ServedResource, build_catalog
from provider_node.store.engine import make_engine, migrate, session_factory

CONFIG = """
[node]
name = "test"
department = "psb"
[audit]
database_url = "sqlite:///audit.db"
[[resources]]
id = "residents"
name = "Residents"
owner_department = "psb"
category = "basic"
sharing_type = "unconditional"
update_period = "P1D"
usage_conditions = ""
modes = ["blinded"]
oprf_modes = ["oprf", "voprf"]
fields = { id_number = "cn_resident_id" }
keys = { "id_number" = ["id_number"] }
source = { csv = "residents.csv" }
"""
IDS = ["11010519491231002X", "510502199611099144", "510502199805027771"]
CALLER = Caller("civil-affairs", "ab" * 32)


class FakeClock:
    """Monotonic seconds, and the wall clock moving with them (a Monday in 2026, 10:00 UTC)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> dt.datetime:
        return dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=self.now)


class NodeSetup(NamedTuple):
    """A node on a SQLite store with one resource, and what the tests drive it with."""

    node: ProviderNode
    clock: FakeClock
    audit: AuditLog
    #: The modeVOPRF public key of the resource, for blinding in either mode.
    public_key: bytes


def node_setup(
    tmp_path: Path, blinded_per_minute: int = 0, refusal_window: float = 10.0
) -> NodeSetup:
    """A node on a SQLite store in ``tmp_path``, its clock at a Monday 10:00 UTC."""
    (tmp_path / "node.toml").write_text(CONFIG)
    config = load_config(tmp_path / "node.toml")
    resource = build_catalog(config)["residents"]
    sk, _ = generate_key_pair(Mode.OPRF)
    sk_v, pk = generate_key_pair(Mode.VOPRF)
    servers = {OprfMode.OPRF: OprfServer(sk), OprfMode.VOPRF: VoprfServer(sk_v)}
    key = resource.comparison_key("id_number")
    domain = resource.domain("id_number")
    encoded = [encode_record(domain, key, [i]) for i in IDS]
    indexes = {
        ("id_number", "blinded"): MatchIndex.build(servers[OprfMode.OPRF].evaluate_batch(encoded)),
        ("id_number", "blinded-voprf"): MatchIndex.build(
            servers[OprfMode.VOPRF].evaluate_batch(encoded)
        ),
    }
    engine = make_engine(config.audit.database_url)
    migrate(engine)
    sessions = session_factory(engine)
    audit = AuditLog(sessions)
    clock = FakeClock()
    served = ServedResource(resource, servers, pk, b"k" * 32, indexes)
    per_minute = ItemsPerMinute(hashed=0, blinded=blinded_per_minute)
    node = ProviderNode(
        {"residents": served},
        audit,
        NodeMetrics(CollectorRegistry()),
        AccessPolicy(sessions, per_minute, clock=clock.wall),
        NodeLimits(
            max_batch_items=100,
            session_seconds=60,
            max_open_sessions_per_department=2,
            refusal_window_seconds=refusal_window,
        ),
        monotonic=clock,
    )
    return NodeSetup(node, clock, audit, pk)


def records(audit: AuditLog) -> list[dict[str, object]]:
    out = io.StringIO()
    audit.export(out, "jsonl")
    return [json.loads(line) for line in out.getvalue().splitlines()]


def blind(
    pk: bytes, ids: list[str], verifiable: bool = False
) -> tuple[OprfClient | VoprfClient, BlindResult]:
    resource_key = Domain("residents", "id_number", 1)
    key = ComparisonKey.from_names("id_number", ["id_number"], {"id_number": "cn_resident_id"})
    client = VoprfClient(pk) if verifiable else OprfClient()
    return client, client.blind([encode_record(resource_key, key, [i]) for i in ids])


HEADER = Header("residents", "id_number", "test purpose", "req-1", 1)
