"""A real provider node on a loopback port with real mutual TLS, for the integration tests.

One node (and its directory) per test module: created with ``init_node`` like an operator would,
filled with synthetic residents, indexes loaded, started on port 0. A second resource catalogued as
``not_shared`` is appended to the configuration to test article 24, a conditional one for grants,
and two offering verification and counts (``VERIFIABLE``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc
import pytest

from bidui.v1 import catalog_pb2_grpc, comparison_pb2_grpc
from client_sdk import ComparisonClient, Credentials
from provider_node.config import load_config
from provider_node.resources.catalog import build_catalog
from provider_node.resources.keys import NodeKeys
from provider_node.resources.loader import load_resource
from provider_node.setup.bootstrap import init_node
from provider_node.setup.runtime import StartedNode, open_node, start_node
from provider_node.setup.sample_data import add_residents, synthetic_residents

RESIDENTS = 300
MAX_BATCH = 500
REQUESTER = "luzhou-civil-affairs"

NOT_SHARED = """
[[resources]]
id = "sealed_records"
name = "Sealed juvenile records"
owner_department = "luzhou-psb"
category = "departmental"
sharing_type = "not_shared"
update_period = "P1M"
usage_conditions = "Not shared (law on the protection of minors)."
modes = ["hashed", "blinded"]
fields = { id_number = "cn_resident_id" }
keys = { "id_number" = ["id_number"] }
source = { csv = "sealed.csv" }
"""


CONDITIONAL = """
[[resources]]
id = "household_register"
name = "Household register"
owner_department = "luzhou-psb"
category = "basic"
sharing_type = "conditional"
update_period = "P1D"
usage_conditions = "Comparison only, under a grant (article 25)."
modes = ["hashed", "blinded"]
fields = { id_number = "cn_resident_id", name = "person_name" }
keys = { "id_number" = ["id_number"], "id_number+name" = ["id_number", "name"] }
source = { url = "sqlite:///source.db", query = "SELECT id_number, name FROM residents" }
"""


# Verification (核验) and counts (issue 9): one resource offering every answer to everyone, one
# conditional resource offering them under a grant.
VERIFIABLE = """
[[resources]]
id = "population"
name = "Population register (verification)"
owner_department = "luzhou-psb"
category = "basic"
sharing_type = "unconditional"
modes = ["hashed", "blinded"]
oprf_modes = ["oprf", "voprf"]
answers = ["match", "verify", "count"]
fields = { id_number = "cn_resident_id", name = "person_name", birth_date = "date" }
keys = { "id_number" = ["id_number"] }
verify = { "id_number" = ["name", "birth_date"] }
[resources.source]
url = "sqlite:///source.db"
query = "SELECT id_number, name, birth_date FROM residents"

[[resources]]
id = "civil_register"
name = "Civil register (verification under a grant)"
owner_department = "luzhou-psb"
category = "basic"
sharing_type = "conditional"
modes = ["hashed", "blinded"]
answers = ["match", "verify", "count"]
fields = { id_number = "cn_resident_id", name = "person_name" }
keys = { "id_number" = ["id_number"] }
verify = { "id_number" = ["name"] }
source = { url = "sqlite:///source.db", query = "SELECT id_number, name FROM residents" }
"""


@dataclass
class NodeUnderTest:
    directory: Path
    config_path: Path
    started: StartedNode
    residents: list[tuple[str, str, str]]
    absent: list[tuple[str, str, str]]
    ca_cert: Path
    client_cert: Path
    client_key: Path

    @property
    def target(self) -> str:
        return f"localhost:{self.started.port}"

    def credentials(self) -> Credentials:
        return Credentials.from_files(self.ca_cert, self.client_cert, self.client_key)

    def channel(self, *, cert: Path | None = None, key: Path | None = None) -> grpc.Channel:
        """A raw channel; ``cert``/``key`` default to the requester's, ``Path()`` for none."""
        cert = self.client_cert if cert is None else cert
        key = self.client_key if key is None else key
        kwargs = {}
        if cert != Path():
            kwargs = {"private_key": key.read_bytes(), "certificate_chain": cert.read_bytes()}
        creds = grpc.ssl_channel_credentials(self.ca_cert.read_bytes(), **kwargs)
        return grpc.secure_channel(
            self.target, creds, options=[("grpc.max_send_message_length", 64 << 20)]
        )

    def stubs(
        self, channel: grpc.Channel
    ) -> tuple[catalog_pb2_grpc.CatalogServiceStub, comparison_pb2_grpc.ComparisonServiceStub]:
        return (
            catalog_pb2_grpc.CatalogServiceStub(channel),
            comparison_pb2_grpc.ComparisonServiceStub(channel),
        )

    def client(self) -> ComparisonClient:
        return ComparisonClient(self.target, self.credentials(), timeout=30.0)


def build_node_dir(
    directory: Path, *, audit_url: str | None = None, refusal_window: int | None = None
) -> tuple[Path, list, list]:
    init = init_node(directory, clients=(REQUESTER,))
    text = init.config_path.read_text(encoding="utf-8")
    if refusal_window is not None:
        text = text.replace("[audit]\n", f"[audit]\nrefusal_window_seconds = {refusal_window}\n")
    text = text.replace("max_batch_items = 100000", f"max_batch_items = {MAX_BATCH}")
    # residents offers both RFC 9497 modes: modeOPRF (the default) and modeVOPRF.
    text = text.replace('oprf_modes = ["oprf"]', 'oprf_modes = ["oprf", "voprf"]')
    if audit_url is not None:
        text = text.replace('database_url = "sqlite:///audit.db"', f'database_url = "{audit_url}"')
    init.config_path.write_text(text + NOT_SHARED + CONDITIONAL + VERIFIABLE, encoding="utf-8")
    people = synthetic_residents(RESIDENTS + 50, seed=7)
    residents, absent = people[:RESIDENTS], people[RESIDENTS:]
    add_residents(init.source_db, residents)
    (directory / "sealed.csv").write_text("id_number\n" + residents[0][0] + "\n")
    config = load_config(init.config_path)
    keys = NodeKeys.load(config.keys.dir)
    for resource in build_catalog(config).values():
        load_resource(resource, config, keys)
    return init.config_path, residents, absent


def start(
    directory: Path,
    *,
    audit_url: str | None = None,
    clock: Callable[[], datetime] | None = None,
    extra_config: str = "",
    refusal_window: int | None = None,
) -> NodeUnderTest:
    """``clock`` is the node's own (audit, grants, allowances); TLS always checks real time.
    ``extra_config`` is TOML appended to node.toml (e.g. a ``[[calendar.years]]`` table);
    ``refusal_window`` sets ``audit.refusal_window_seconds`` (None: the default)."""
    config_path, residents, absent = build_node_dir(
        directory, audit_url=audit_url, refusal_window=refusal_window
    )
    if extra_config:
        with config_path.open("a", encoding="utf-8") as handle:
            handle.write("\n" + extra_config)
    opened = open_node(load_config(config_path), **({"clock": clock} if clock else {}))
    started = start_node(opened, listen="127.0.0.1:0", metrics_listen="127.0.0.1:0")
    pki = directory / "pki"
    return NodeUnderTest(
        directory=directory,
        config_path=config_path,
        started=started,
        residents=residents,
        absent=absent,
        ca_cert=pki / "ca.pem",
        client_cert=pki / "clients" / f"{REQUESTER}.pem",
        client_key=pki / "clients" / f"{REQUESTER}.key",
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    # The tests on this node read each refusal's own record, many refusals of one department
    # in a row: every refusal is recorded alone here. test_refusal_floods.py runs the default
    # window, where a source's repeated refusals are counted into one record.
    running = start(tmp_path_factory.mktemp("node"), refusal_window=0)
    yield running
    running.started.stop(grace=1.0)
