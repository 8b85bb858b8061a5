"""provider_node.resources.keys: 0600 key files, refusal of readable ones, derived per-resource
keys."""

from __future__ import annotations

import logging
import os
import pickle
import stat
from pathlib import Path

import pytest

from comparator import oprf
from provider_node.resources.keys import (
    HMAC_MASTER_FILE,
    OPRF_SEED_FILE,
    KeyStoreError,
    NodeKeys,
    key_info,
    write_secret_file,
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_writes_two_0600_files_and_load_reads_them(tmp_path: Path) -> None:
    keys = NodeKeys.generate(tmp_path / "keys")
    for name in (OPRF_SEED_FILE, HMAC_MASTER_FILE):
        path = tmp_path / "keys" / name
        assert mode_of(path) == 0o600
        assert len(path.read_bytes()) == 32
    assert mode_of(tmp_path / "keys") == 0o700
    assert not [p for p in (tmp_path / "keys").iterdir() if p.name.startswith(".")]
    loaded = NodeKeys.load(tmp_path / "keys")
    assert loaded.hmac_key("residents", 1) == keys.hmac_key("residents", 1)
    assert loaded.oprf_key_pair("residents", 1, oprf.Mode.OPRF) == keys.oprf_key_pair(
        "residents", 1, oprf.Mode.OPRF
    )


def test_generate_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    first = NodeKeys.generate(tmp_path)
    with pytest.raises(KeyStoreError, match="refusing to overwrite"):
        NodeKeys.generate(tmp_path)
    assert NodeKeys.load(tmp_path).hmac_key("r", 1) == first.hmac_key("r", 1)
    second = NodeKeys.generate(tmp_path, overwrite=True)
    assert second.hmac_key("r", 1) != first.hmac_key("r", 1)
    assert mode_of(tmp_path / OPRF_SEED_FILE) == 0o600


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    NodeKeys.generate(tmp_path)
    os.chmod(tmp_path / HMAC_MASTER_FILE, 0o644)
    with pytest.raises(KeyStoreError) as info:
        NodeKeys.load(tmp_path)
    message = str(info.value)
    assert "readable by group or others (mode 0644)" in message
    assert f"chmod 600 {tmp_path / HMAC_MASTER_FILE}" in message


def test_missing_and_truncated_key_files(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="bidui provider init"):
        NodeKeys.load(tmp_path)
    NodeKeys.generate(tmp_path)
    (tmp_path / OPRF_SEED_FILE).unlink()
    write_secret_file(tmp_path / OPRF_SEED_FILE, b"short")
    with pytest.raises(KeyStoreError, match="holds 5 bytes, expected exactly 32"):
        NodeKeys.load(tmp_path)


def test_write_secret_file_never_replaces_without_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write_secret_file(path, b"a" * 32)
    with pytest.raises(KeyStoreError, match="already exists"):
        write_secret_file(path, b"b" * 32)
    assert path.read_bytes() == b"a" * 32
    write_secret_file(path, b"c" * 32, overwrite=True)
    assert path.read_bytes() == b"c" * 32
    assert mode_of(path) == 0o600


def test_derived_keys_are_separated_by_resource_version_and_purpose(tmp_path: Path) -> None:
    keys = NodeKeys(tmp_path, bytes(range(32)), bytes(range(32, 64)))
    hmac_keys = {
        keys.hmac_key("residents", 1),
        keys.hmac_key("residents", 2),
        keys.hmac_key("vehicles", 1),
    }
    assert len(hmac_keys) == 3
    assert all(len(key) == 32 for key in hmac_keys)
    sk1, pk1 = keys.oprf_key_pair("residents", 1, oprf.Mode.OPRF)
    sk2, pk2 = keys.oprf_key_pair("residents", 2, oprf.Mode.OPRF)
    assert len(pk1) == oprf.ELEMENT_LENGTH and len(sk1) == oprf.SCALAR_LENGTH
    assert pk1 != pk2 and sk1 != sk2
    assert keys.oprf_public_key("residents", 1, oprf.Mode.OPRF) == pk1
    # Each RFC 9497 mode has its own key (DeriveKeyPair's DST names the mode).
    sk_v, pk_v = keys.oprf_key_pair("residents", 1, oprf.Mode.VOPRF)
    assert sk_v != sk1 and pk_v != pk1
    assert (sk_v, pk_v) == oprf.derive_key_pair(
        bytes(range(32)), key_info(b"oprf", "residents", 1), oprf.Mode.VOPRF
    )
    # Deterministic: the same seed derives the same keys (what makes backups two small files).
    again = NodeKeys(tmp_path, bytes(range(32)), bytes(range(32, 64)))
    assert again.oprf_key_pair("residents", 1, oprf.Mode.OPRF) == (sk1, pk1)
    assert again.hmac_key("residents", 1) == keys.hmac_key("residents", 1)


def test_the_derived_oprf_key_matches_its_public_key(tmp_path: Path) -> None:
    keys = NodeKeys(tmp_path, bytes(32), bytes(32))
    secret, public = keys.oprf_key_pair("residents", 1, oprf.Mode.VOPRF)
    server = oprf.VoprfServer(secret)
    assert server.public_key == public
    client = oprf.VoprfClient(public)
    blind = client.blind([b"record"])
    (output,) = client.finalize(blind.state, server.blind_evaluate(blind.message))
    assert output == server.evaluate(b"record")


def test_key_info_is_unambiguous() -> None:
    assert key_info(b"hmac", "ab", 1) != key_info(b"hmac", "a", 1)
    assert key_info(b"hmac", "a", 1) != key_info(b"oprf", "a", 1)
    assert key_info(b"hmac", "a", 1) != key_info(b"hmac", "a", 2)
    assert key_info(b"hmac", "a", 1).endswith(b"\x00\x01a\x00\x00\x00\x01")
    with pytest.raises(ValueError):
        key_info(b"hmac", "", 1)


def test_secrets_never_show(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    keys = NodeKeys.generate(tmp_path)
    seed = (tmp_path / OPRF_SEED_FILE).read_bytes()
    master = (tmp_path / HMAC_MASTER_FILE).read_bytes()
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("keys: %r %s", keys, keys)
    for text in (repr(keys), str(keys), caplog.text):
        for secret in (seed, master, keys.hmac_key("r", 1)):
            assert secret.hex() not in text
            assert repr(secret) not in text
    assert "<hidden>" in repr(keys)
    with pytest.raises(TypeError):
        pickle.dumps(keys)
