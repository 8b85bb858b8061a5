"""``bidui provider pki rotate-ca`` and ``bidui provider keys rotate``: refused without --confirm
(exit 2, what it would invalidate listed, nothing changed); with it, the old files backed up, the
new ones in place, the action audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from bidui_cli.main import main
from provider_node.config import load_config
from provider_node.resources.catalog import build_catalog
from provider_node.resources.keys import HMAC_MASTER_FILE, OPRF_SEED_FILE, NodeKeys
from provider_node.resources.loader import IndexMissingError, load_indexes
from provider_node.setup.bootstrap import init_node
from provider_node.setup.sample_data import add_residents, synthetic_residents
from tests.cli.files import mode_of, node_files
from tests.cli.running import audited

CLIENT = "luzhou-civil-affairs"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["provider", *args])


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def verifies(cert: Path, ca: Path) -> bool:
    try:
        certificate(cert).verify_directly_issued_by(certificate(ca))
    except (ValueError, TypeError, InvalidSignature):  # other issuer name, key type or signature
        return False
    return True


def backup_of(path: Path) -> Path:
    (backup,) = path.parent.glob(f"{path.name}.replaced-*T*Z")
    return backup


@pytest.fixture
def node(tmp_path: Path) -> Path:
    init = init_node(tmp_path, clients=(CLIENT,))
    add_residents(init.source_db, synthetic_residents(20, seed=5))
    loaded = run("load", "--config", str(init.config_path))
    assert loaded.exit_code == 0, loaded.output
    return tmp_path


@pytest.mark.parametrize(
    ("command", "invalidated"),
    [
        (["pki", "rotate-ca"], ["every client certificate the current CA issued", CLIENT]),
        (["keys", "rotate"], ["match indexes of every resource", "residents 1 -> 2"]),
    ],
)
def test_without_confirm_refuses_and_changes_nothing(
    node: Path, command: list[str], invalidated: list[str]
) -> None:
    before = node_files(node)
    result = run(*command, "--config", str(node / "node.toml"))
    assert result.exit_code == 2
    assert "would invalidate" in result.output
    for words in invalidated:
        assert words in result.output
    assert "nothing was changed" in result.output and "--confirm" in result.output
    assert node_files(node) == before


def test_rotate_ca(node: Path) -> None:
    pki = node / "pki"
    client_cert = pki / "clients" / f"{CLIENT}.pem"
    old = {name: (pki / name).read_bytes() for name in ("ca.pem", "ca.key", "node.pem")}
    old_client = client_cert.read_bytes()
    assert verifies(client_cert, pki / "ca.pem")

    result = run("pki", "rotate-ca", "--config", str(node / "node.toml"), "--confirm")
    assert result.exit_code == 0, result.output
    for name, content in old.items():
        assert (pki / name).read_bytes() != content
        assert backup_of(pki / name).read_bytes() == content  # the old CA is kept
    assert mode_of(backup_of(pki / "ca.key")) == 0o600
    assert verifies(pki / "node.pem", pki / "ca.pem")
    # The department's certificate no longer verifies against the new CA; it is retired.
    retired = backup_of(client_cert)
    assert retired.read_bytes() == old_client and not client_cert.exists()
    assert not verifies(retired, pki / "ca.pem")
    assert f"bidui provider init --dir {node} --client {CLIENT}" in result.output
    assert [r["action"] for r in audited(node / "node.toml")][-1] == "ca_rotation"

    reissued = run("init", "--dir", str(node), "--client", CLIENT)
    assert reissued.exit_code == 0, reissued.output
    assert verifies(client_cert, pki / "ca.pem")


def test_rotate_keys(node: Path) -> None:
    keys_dir, config_path = node / "keys", node / "node.toml"
    old_keys = {name: (keys_dir / name).read_bytes() for name in (OPRF_SEED_FILE, HMAC_MASTER_FILE)}
    old_config = config_path.read_text(encoding="utf-8")

    result = run("keys", "rotate", "--config", str(config_path), "--confirm")
    assert result.exit_code == 0, result.output
    for name, content in old_keys.items():
        assert (keys_dir / name).read_bytes() != content
        assert backup_of(keys_dir / name).read_bytes() == content
        assert mode_of(keys_dir / name) == mode_of(backup_of(keys_dir / name)) == 0o600
    assert backup_of(config_path).read_text(encoding="utf-8") == old_config
    # Only the key_version line changed; the operator's comments stay.
    assert config_path.read_text(encoding="utf-8") == old_config.replace(
        "key_version = 1 ", "key_version = 2 "
    )
    assert [r["action"] for r in audited(config_path)][-1] == "key_rotation"

    # The indexes built under the old keys are refused until `load` rebuilds them.
    config = load_config(config_path)
    resource = build_catalog(config)["residents"]
    with pytest.raises(IndexMissingError, match="bidui provider load"):
        load_indexes(resource, config, NodeKeys.load(config.keys.dir))
    assert run("load", "--config", str(config_path)).exit_code == 0
    assert load_indexes(resource, config, NodeKeys.load(config.keys.dir))


def test_rotate_ca_refuses_a_ca_it_did_not_make(node: Path) -> None:
    (node / "pki" / "ca.key").unlink()  # as with a production CA whose key is elsewhere
    before = node_files(node)
    result = run("pki", "rotate-ca", "--config", str(node / "node.toml"), "--confirm")
    assert result.exit_code == 2
    assert "is not a development CA" in result.output
    assert node_files(node) == before
