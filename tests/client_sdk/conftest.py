"""A CA, a department's files and a running stand-in node, for the SDK's transport tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from client_sdk import Credentials
from tests.client_sdk.fake_node import FakeNode, resident_ids
from tests.client_sdk.tls_pki import Authority, Issued

PRESENT = resident_ids(10)
ABSENT = resident_ids(10, start=500)


@dataclass
class Pki:
    """The node's CA and the files of a department it signed."""

    ca: Authority
    node: Issued
    ca_file: Path
    cert_file: Path
    key_file: Path

    def credentials(self) -> Credentials:
        return Credentials.from_files(self.ca_file, self.cert_file, self.key_file)


@pytest.fixture(scope="module")
def node_ca() -> Authority:
    return Authority("node CA")


@pytest.fixture
def pki(tmp_path: Path, node_ca: Authority) -> Pki:
    cert, key = node_ca.department().write(tmp_path, "civil-affairs")
    return Pki(node_ca, node_ca.node(), node_ca.write(tmp_path), cert, key)


@pytest.fixture
def fake_node(pki: Pki) -> Iterator[FakeNode]:
    node = FakeNode(pki.node.key_pem, pki.node.cert_pem, pki.ca.cert_pem, PRESENT)
    node.start()
    yield node
    node.stop()
