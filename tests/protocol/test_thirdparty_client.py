"""The client written from docs/PROTOCOL.md alone agrees with the vectors and with a real node.

``thirdparty_client`` imports nothing of bidui but the wire stubs. Here it is checked against
docs/vectors (normalisation, canonical bytes, tags, every blinded step, the proof, match bits), then
run against a real node over real mutual TLS on loopback in both modes, where it must get the same
answers as the SDK for the same records, awkward spellings and invalid records included.
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pysodium
import pytest

from provider_node.config import load_config
from provider_node.resources.catalog import build_catalog
from provider_node.resources.keys import NodeKeys
from provider_node.resources.loader import load_resource
from provider_node.setup.runtime import open_node, start_node
from tests.integration.conftest import NodeUnderTest, start
from tests.protocol import thirdparty_client as tp
from tests.protocol.vectors import ROOT, cases, key_fields, load, resource_vector

TYPES = set(tp.NORMALISERS)


def _key_fields(case: dict[str, Any]) -> list[tuple[str, str]]:
    resource = resource_vector(case["resource_id"], case["key_version"])
    return key_fields(resource, case["comparison_key"])


def test_the_client_imports_only_the_wire_stubs_grpc_pysodium_and_the_standard_library() -> None:
    code = (
        "import sys, tests.protocol.thirdparty_client\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for package in ("comparator", "client_sdk", "provider_node", "bidui_cli"):
        assert f"'{package}'" not in loaded
    imported = set()
    for node in ast.walk(ast.parse(Path(tp.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    third_party = {m for m in imported if m.split(".")[0] not in sys.stdlib_module_names}
    assert third_party == {"grpc", "pysodium", "bidui.v1"}


# ---- against the vectors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", [c for c in cases("fields", "cases") if c.values[0]["type"] in TYPES]
)
def test_normalisation_matches_the_field_vectors(case: dict[str, Any]) -> None:
    if "output" in case:
        assert tp.normalise(case["type"], case["input"]) == case["output"]
    else:
        with pytest.raises(tp.FieldRefused) as refused:
            tp.normalise(case["type"], case["input"])
        assert refused.value.reason == case["error"]


SUPPORTED_RECORDS = [
    c for c in cases("records", "records") if {t for _, t in _key_fields(c.values[0])} <= TYPES
]


def test_the_supported_record_vectors_include_every_implemented_type() -> None:
    used = {t for c in SUPPORTED_RECORDS for _, t in _key_fields(c.values[0])}
    assert used == TYPES
    assert any(len(_key_fields(c.values[0])) > 1 for c in SUPPORTED_RECORDS)


@pytest.mark.parametrize("case", SUPPORTED_RECORDS)
def test_record_bytes_tag_and_output_match_the_vectors(case: dict[str, Any]) -> None:
    rid, name, version = case["resource_id"], case["comparison_key"], case["key_version"]
    fields = _key_fields(case)
    if "error" in case:
        with pytest.raises(tp.FieldRefused) as refused:
            tp.encode_record(rid, name, version, fields, case["record"])
        assert [refused.value.field, refused.value.reason] == list(case["error"].values())
        return
    encoded = tp.encode_record(rid, name, version, fields, case["record"])
    assert encoded.hex() == case["canonical_hex"]
    resource = resource_vector(rid, version)
    hmac_key = bytes.fromhex(resource["hmac_key_hex"])
    tag = tp.hmac_tag(hmac_key, tp.domain(rid, name, version), encoded)
    assert tag.hex() == case["hmac_tag_hex"]
    # The node's side of one blinded item, done here with the vectors' TEST private key.
    r, blinded = tp.blind(encoded)
    sk = bytes.fromhex(resource["oprf_private_key_hex"])
    evaluated = pysodium.crypto_scalarmult_ristretto255(sk, blinded)
    assert tp.finalize(encoded, r, evaluated).hex() == case["oprf_output_hex"]
    # modeVOPRF: its own context string and key.
    r, blinded = tp.blind(encoded, ctx=tp.VOPRF_CONTEXT)
    sk = bytes.fromhex(resource["voprf_private_key_hex"])
    evaluated = pysodium.crypto_scalarmult_ristretto255(sk, blinded)
    assert tp.finalize(encoded, r, evaluated).hex() == case["voprf_output_hex"]


def _blinded_steps(data: dict[str, Any], ctx: bytes) -> tuple[list[bytes], list[bytes]]:
    assert ctx.hex() == data["context_string_hex"]
    blinded, evaluated = [], []
    for item in data["items"]:
        encoded = bytes.fromhex(item["input_hex"])
        assert tp.hash_to_group(encoded, ctx).hex() == item["input_element_hex"]
        r, element = tp.blind(encoded, bytes.fromhex(item["blind_hex"]), ctx)
        assert element.hex() == item["blinded_element_hex"]
        evaluation = bytes.fromhex(item["evaluated_element_hex"])
        assert tp.finalize(encoded, r, evaluation).hex() == item["output_hex"]
        blinded.append(element)
        evaluated.append(evaluation)
    return blinded, evaluated


def test_every_blinded_step_matches_the_vectors_in_modeoprf() -> None:
    data = load("blinded")
    assert data["oprf_mode"] == "modeOPRF" and "proof" not in data
    _blinded_steps(data, tp.CONTEXT)


def test_every_blinded_step_and_the_proof_match_the_vectors_in_modevoprf() -> None:
    data = load("blinded")["voprf"]
    pk = bytes.fromhex(data["oprf_public_key_hex"])
    blinded, evaluated = _blinded_steps(data, tp.VOPRF_CONTEXT)
    proof = data["proof"]
    m, z = tp.composites(pk, blinded, evaluated)
    assert (m.hex(), z.hex()) == (proof["composite_m_hex"], proof["composite_z_hex"])
    good = bytes.fromhex(proof["proof_hex"])
    assert tp.verify_proof(pk, blinded, evaluated, good)
    assert not tp.verify_proof(pk, blinded, evaluated, good[:32] + bytes(32))
    assert not tp.verify_proof(pk, blinded, evaluated[::-1], good)
    assert not tp.verify_proof(pk, blinded[:2], evaluated[:2], good)


@pytest.mark.parametrize("case", cases("match_bits", "cases"))
def test_match_bits_unpack_as_the_vectors_say(case: dict[str, Any]) -> None:
    from bidui.v1 import comparison_pb2

    flags = [c == "1" for c in case["matches"]]
    result = comparison_pb2.MatchResult(
        match_bits=bytes.fromhex(case["match_bits_hex"]),
        item_count=len(flags),
        match_count=sum(flags),
    )
    assert tp.unpack_match_bits(result, len(flags)) == flags


# ---- against a real node, beside the SDK ---------------------------------------------------

PURPOSE = "protocol test: a third-party client"
BIRTH_KEY = '"name+birth_date" = ["name", "birth_date"]'


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    """The integration node, restarted with one more comparison key that uses the date type."""
    first = start(tmp_path_factory.mktemp("protocol-node"))
    first.started.stop(grace=0)
    text = first.config_path.read_text(encoding="utf-8")
    marker = '"id_number+name" = ["id_number", "name"]'
    assert marker in text
    first.config_path.write_text(text.replace(marker, f"{marker}, {BIRTH_KEY}", 1), "utf-8")
    config = load_config(first.config_path)
    load_resource(build_catalog(config)["residents"], config, NodeKeys.load(config.keys.dir))
    started = start_node(open_node(config), listen="127.0.0.1:0", metrics_listen="127.0.0.1:0")
    running = dataclasses.replace(first, started=started)
    yield running
    started.stop(grace=1.0)


def _wide(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


def _records(node: NodeUnderTest) -> list[dict[str, str | None]]:
    """Present and absent residents, spelled as clerks spell them, and invalid ones."""
    rows: list[dict[str, str | None]] = []
    for i, (id_number, name, birth) in enumerate(node.residents[:30]):
        year, month, day = birth.split("-")
        variant = i % 5
        if variant == 1:
            id_number, birth = _wide(id_number.lower()), f"{year}年{int(month)}月{int(day)}日"
        elif variant == 2 and id_number[6:8] == "19":
            id_number = id_number[:6] + id_number[8:17]  # the 15-digit first-generation form
        elif variant == 3:
            name, birth = f"\u3000{name}\u00a0\t", f"{year}/{month}/{day}"
        elif variant == 4:
            id_number, birth = id_number.lower(), f"{year}{month}{day}"
        rows.append({"id_number": id_number, "name": name, "birth_date": birth})
    for id_number, name, birth in node.absent[:10]:
        rows.append({"id_number": id_number, "name": name, "birth_date": birth})
    resident = node.residents[40]
    rows.append({"id_number": resident[0], "name": "不是此人", "birth_date": resident[2]})
    bad_check = resident[0][:17] + ("0" if resident[0][17] != "0" else "1")
    rows.append({"id_number": bad_check, "name": resident[1], "birth_date": "2023-02-29"})
    rows.append({"id_number": None, "name": "", "birth_date": "1990-13-01"})
    return rows


def _third_party(node: NodeUnderTest, *, with_certificate: bool = True) -> tp.ThirdPartyClient:
    return tp.ThirdPartyClient(
        node.target,
        ca_pem=node.ca_cert.read_bytes(),
        cert_pem=node.client_cert.read_bytes() if with_certificate else None,
        key_pem=node.client_key.read_bytes() if with_certificate else None,
    )


def _sdk_answers(
    node: NodeUnderTest, records: list[dict[str, Any]], key: str, mode: str, verifiable: bool
) -> list:
    with node.client() as client:
        result = client.compare(
            "residents",
            records,
            key=key,
            mode=mode,
            purpose=PURPOSE,
            verifiable=verifiable,  # type: ignore[arg-type]
        )
    return [None if r.status == "error" else r.status == "matched" for r in result]


@pytest.mark.parametrize("mode", ["hashed", "blinded", "blinded-voprf"])
@pytest.mark.parametrize("key", ["id_number", "id_number+name", "name+birth_date"])
def test_same_answers_as_the_sdk_from_a_real_node(node: NodeUnderTest, mode: str, key: str) -> None:
    records = _records(node)
    client = _third_party(node)
    verifiable = mode == "blinded-voprf"
    mode = mode.removesuffix("-voprf")
    try:
        if mode == "hashed":
            answers = client.compare_hashed("residents", key, records, purpose=PURPOSE)
        else:
            answers = client.compare_blinded(
                "residents", key, records, purpose=PURPOSE, verifiable=verifiable
            )
    finally:
        client.close()
    assert answers == _sdk_answers(node, records, key, mode, verifiable)
    present, absent = answers[:30], answers[30:40]
    assert present == [True] * 30 and absent == [False] * 10
    wrong_name, bad, empty = answers[40:]
    assert wrong_name is (key == "id_number")
    assert bad is None and empty is None


def test_blinded_mode_without_verifying_the_proof_is_a_client_choice(node: NodeUnderTest) -> None:
    records = _records(node)[:12]
    client = _third_party(node)
    try:
        answers = client.compare_blinded(
            "residents", "id_number", records, purpose=PURPOSE, verifiable=True, verify=False
        )
    finally:
        client.close()
    assert answers == [True] * 12


def test_no_client_certificate_fails_the_handshake(node: NodeUnderTest) -> None:
    client = _third_party(node, with_certificate=False)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            client.describe("residents")
    finally:
        client.close()
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_the_node_publishes_what_the_third_party_client_needs(node: NodeUnderTest) -> None:
    client = _third_party(node)
    try:
        entry = client.describe("residents")
    finally:
        client.close()
    assert entry.oprf_suite == tp.SUITE
    assert entry.canonical_version == tp.CANONICAL_VERSION
    assert tp.valid_element(entry.oprf_public_key)  # residents offers modeVOPRF too
    assert list(entry.oprf_modes) == [
        tp.catalog_pb2.OPRF_MODE_OPRF,
        tp.catalog_pb2.OPRF_MODE_VOPRF,
    ]
    assert {f.type for f in entry.fields} <= TYPES


@pytest.mark.parametrize("version", [0, 1, tp.CANONICAL_VERSION + 1])
def test_a_node_of_another_canonical_version_is_refused(version: int) -> None:
    from bidui.v1 import catalog_pb2

    entry = catalog_pb2.Resource(id="residents", canonical_version=version)
    with pytest.raises(tp.OtherCanonicalVersion, match=f"canonical version {version or 1},"):
        tp.check_canonical_version(entry)
    entry.canonical_version = tp.CANONICAL_VERSION
    tp.check_canonical_version(entry)


def test_the_client_labels_records_with_the_vectors_canonical_version() -> None:
    assert load("records")["canonical_version"] == tp.CANONICAL_VERSION
    assert load("records")["record_label"] == f"bidui-record-v{tp.CANONICAL_VERSION}"
