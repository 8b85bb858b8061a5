"""docs/vectors and docs/PROTOCOL.md state what the code does: every vector is recomputed here.

Three layers: the vector files are byte for byte what scripts/gen_vectors.py makes now; each vector
is recomputed with the project's own functions (so a failure names the vector that moved); and the
constants, character sets, reasons and status codes that PROTOCOL.md spells out are checked against
the code's behaviour.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import importlib
import importlib.util
import inspect
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

from comparator import group
from comparator.canonical import (
    CANONICAL_VERSION,
    RECORD_LABEL,
    ComparisonKey,
    Domain,
    canonicalize,
    encode_record,
    encode_records,
)
from comparator.errors import FieldError
from comparator.fields import normalize, resident_id_check_character
from comparator.index import ENTRY_LENGTH, pack_matches, unpack_matches
from comparator.keyed_hash import HASH_LABEL, TAG_LENGTH, KeyedHasher
from comparator.oprf import (
    MAX_VERIFIABLE_BATCH,
    OUTPUT_LENGTH,
    PROOF_LENGTH,
    SUITE_ID,
    Evaluation,
    Mode,
    OprfClient,
    OprfServer,
    VoprfClient,
    VoprfServer,
    derive_key_pair,
)
from comparator.oprf._testing import blind_evaluate_with_nonce, blind_with
from comparator.oprf.dleq import compute_composites
from comparator.oprf.suite import SUITES, context_string
from provider_node.comparison.node import MAX_PURPOSE_CHARS
from provider_node.core import errors
from provider_node.resources.keys import NodeKeys, key_info
from provider_node.transport import status
from tests.protocol.vectors import (
    GENERATOR,
    PROTOCOL_MD,
    VECTORS_DIR,
    cases,
    key_fields,
    load,
    resource_vector,
)

RECORDS = load("records")
DOC = PROTOCOL_MD.read_text(encoding="utf-8")
DOC_FLAT = " ".join(DOC.split())  # line breaks as spaces


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_vectors", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vector_files_are_what_the_generator_makes_now() -> None:
    rendered = _generator().render()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in VECTORS_DIR.glob("*.json")}
    assert sorted(rendered) == sorted(on_disk), "run: python scripts/gen_vectors.py"
    stale = [name for name in rendered if rendered[name] != on_disk[name]]
    assert not stale, f"{stale} are stale: the code changed; run python scripts/gen_vectors.py"


# ---- fields --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("fields", "cases"))
def test_field_vector(case: dict[str, Any]) -> None:
    if "output" in case:
        assert normalize(case["type"], case["input"]) == case["output"]
    else:
        with pytest.raises(FieldError) as caught:
            normalize(case["type"], case["input"])
        assert caught.value.reason == case["error"]


def test_every_field_type_has_accepted_and_refused_vectors() -> None:
    kinds = {(c["type"], "output" in c) for c in load("fields")["cases"]}
    types = {t for t, _ in kinds}
    assert types == {"cn_resident_id", "cn_uscc", "person_name", "phone", "date", "text", "integer"}
    assert kinds == {(t, ok) for t in types for ok in (True, False)}


def test_protocol_md_names_every_refusal_reason_of_the_vectors() -> None:
    reasons = {c["error"] for c in load("fields")["cases"] if "error" in c}
    reasons |= {c["error"]["reason"] for c in RECORDS["records"] if "error" in c}
    missing = [r for r in reasons if re.sub(r"not \d+$", "not N", r) not in DOC_FLAT]
    assert not missing


# ---- records: canonical bytes, tags, OPRF outputs ----------------------------------------------


def _key(resource: dict[str, Any], name: str) -> ComparisonKey:
    fields = key_fields(resource, name)
    return ComparisonKey.from_names(name, [f for f, _ in fields], dict(fields))


def test_resource_keys_are_derived_as_the_node_derives_them() -> None:
    secrets = RECORDS["test_secrets"]
    seed = bytes.fromhex(secrets["oprf_seed_hex"])
    keys = NodeKeys(Path("unused"), seed, bytes.fromhex(secrets["hmac_master_hex"]))
    assert (RECORDS["suite"], RECORDS["oprf_mode"]) == (SUITE_ID, "modeOPRF")
    for resource in RECORDS["resources"]:
        rid, version = resource["resource_id"], resource["key_version"]
        assert resource["hmac_key_info_hex"] == key_info(b"hmac", rid, version).hex()
        assert resource["hmac_key_hex"] == keys.hmac_key(rid, version).hex()
        oprf_info = key_info(b"oprf", rid, version)
        assert resource["oprf_key_info_hex"] == oprf_info.hex()
        for prefix, mode in (("oprf", Mode.OPRF), ("voprf", Mode.VOPRF)):
            sk, pk = keys.oprf_key_pair(rid, version, mode)
            assert (
                resource[f"{prefix}_private_key_hex"],
                resource[f"{prefix}_public_key_hex"],
            ) == (
                sk.hex(),
                pk.hex(),
            )
            assert derive_key_pair(seed, oprf_info, mode) == (sk, pk)
        for entry in resource["comparison_keys"]:
            domain = Domain(rid, entry["comparison_key"], version).encode()
            assert entry["domain_hex"] == domain.hex()
            assert entry["hmac_prefix_hex"] == (HASH_LABEL + domain).hex()


@pytest.mark.parametrize("case", cases("records", "records"))
def test_record_vector(case: dict[str, Any]) -> None:
    resource = resource_vector(case["resource_id"], case["key_version"])
    key = _key(resource, case["comparison_key"])
    domain = Domain(case["resource_id"], case["comparison_key"], case["key_version"])
    record = case["record"]
    if "error" in case:
        with pytest.raises(FieldError) as caught:
            encode_record(domain, key, record)
        assert (caught.value.field, caught.value.reason) == (
            case["error"]["field"],
            case["error"]["reason"],
        )
        (batch_error,) = encode_records(domain, key, [record]).errors
        assert (batch_error.field, batch_error.reason) == (caught.value.field, caught.value.reason)
        return
    assert list(canonicalize(key, record)) == case["canonical_values"]
    encoded = encode_record(domain, key, record)
    assert encoded.hex() == case["canonical_hex"]
    assert encode_records(domain, key, [record]).encoded == [encoded]
    hmac_key = bytes.fromhex(resource["hmac_key_hex"])
    tag = KeyedHasher(hmac_key, domain).tag(encoded)
    assert tag.hex() == case["hmac_tag_hex"]
    # PROTOCOL.md section 6, with the standard library's HMAC.
    message = HASH_LABEL + domain.encode() + encoded
    assert hmac.new(hmac_key, message, hashlib.sha256).digest() == tag
    server = OprfServer(bytes.fromhex(resource["oprf_private_key_hex"]))
    assert server.evaluate(encoded).hex() == case["oprf_output_hex"]
    verifiable = VoprfServer(bytes.fromhex(resource["voprf_private_key_hex"]))
    assert verifiable.evaluate(encoded).hex() == case["voprf_output_hex"]


def test_records_cover_every_field_type_and_multi_field_keys() -> None:
    answered = [c for c in RECORDS["records"] if "error" not in c]
    types = set()
    for case in answered:
        resource = resource_vector(case["resource_id"], case["key_version"])
        types |= {resource["fields"][f] for f in _key(resource, case["comparison_key"]).field_names}
    assert len(types) == 7
    assert any(len(c["canonical_values"]) > 1 for c in answered)
    assert {c["key_version"] for c in answered} == {1, 2}


# ---- one blinded comparison step by step ---------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.OPRF, Mode.VOPRF])
def test_blinded_vector_every_step(mode: Mode) -> None:
    top = load("blinded")
    data = top if mode is Mode.OPRF else top["voprf"]
    suite = SUITES[mode]
    assert data["oprf_mode"] == ("modeOPRF" if mode is Mode.OPRF else "modeVOPRF")
    assert data["context_string_hex"] == context_string(mode).hex()
    assert data["hash_to_group_dst_hex"] == suite.hash_to_group_dst.hex()
    assert data["hash_to_scalar_dst_hex"] == suite.hash_to_scalar_dst.hex()
    resource = resource_vector(top["resource_id"], top["key_version"])
    prefix = "oprf" if mode is Mode.OPRF else "voprf"
    sk = bytes.fromhex(resource[f"{prefix}_private_key_hex"])
    key = _key(resource, top["comparison_key"])
    domain = Domain(top["resource_id"], top["comparison_key"], top["key_version"])
    items = data["items"]
    inputs = [encode_record(domain, key, item["record"]) for item in items]
    blinds = [bytes.fromhex(item["blind_hex"]) for item in items]
    server: OprfServer | VoprfServer
    client: OprfClient | VoprfClient
    if mode is Mode.VOPRF:
        assert data["oprf_public_key_hex"] == resource["voprf_public_key_hex"]
        pk = bytes.fromhex(data["oprf_public_key_hex"])
        client, server = VoprfClient(pk), VoprfServer(sk)
        blinded = blind_with(client, inputs, blinds)
        proof = data["proof"]
        evaluation = blind_evaluate_with_nonce(
            server, blinded.message, bytes.fromhex(proof["nonce_hex"])
        )
        assert evaluation.proof is not None and len(evaluation.proof) == PROOF_LENGTH
        assert evaluation.proof.hex() == proof["proof_hex"]
        m, z = compute_composites(suite, pk, blinded.message, evaluation.elements)
        assert (m.hex(), z.hex()) == (proof["composite_m_hex"], proof["composite_z_hex"])
    else:
        assert "proof" not in data and "oprf_public_key_hex" not in data
        client, server = OprfClient(), OprfServer(sk)
        blinded = blind_with(client, inputs, blinds)
        evaluation = server.blind_evaluate(blinded.message)
        assert evaluation.proof is None
    outputs = client.finalize(blinded.state, Evaluation(evaluation.elements, evaluation.proof))
    for i, item in enumerate(items):
        element = group.hash_to_group(inputs[i], suite.hash_to_group_dst)
        assert item["input_hex"] == inputs[i].hex()
        assert item["input_element_hex"] == element.hex()
        assert item["blinded_element_hex"] == blinded.message[i].hex()
        assert item["evaluated_element_hex"] == evaluation.elements[i].hex()
        assert item["unblinded_element_hex"] == group.scalar_mult(sk, element).hex()
        assert item["output_hex"] == outputs[i].hex() == server.evaluate(inputs[i]).hex()
        assert len(outputs[i]) == OUTPUT_LENGTH


# ---- match bits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("match_bits", "cases"))
def test_match_bits_vector(case: dict[str, Any]) -> None:
    flags = [c == "1" for c in case["matches"]]
    assert pack_matches(flags).hex() == case["match_bits_hex"]
    assert unpack_matches(bytes.fromhex(case["match_bits_hex"]), len(flags)) == flags


# ---- what PROTOCOL.md spells out ---------------------------------------------------------------


def _runs(numbers: list[int], one: Callable[[int], str], span: str, sep: str) -> str:
    """Runs of consecutive numbers, three or more written ``first{span}last``, joined by ``sep``."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    parts: list[str] = []
    for run in runs:
        if len(run) > 2:
            parts.append(f"{one(run[0])}{span}{one(run[-1])}")
        else:
            parts.extend(map(one, run))
    return sep.join(parts)


def _code_points(points: list[int]) -> str:
    """``U+0009..U+000D U+0020 ...``: runs of consecutive code points as ranges."""
    return _runs(points, lambda p: f"U+{p:04X}", "..", " ")


BMP = [chr(p) for p in range(0x10000) if not 0xD800 <= p <= 0xDFFF]


def _folds_to(field_type: str, value: str, expected: str) -> bool:
    try:
        return normalize(field_type, value) == expected
    except FieldError:
        return False


def test_protocol_md_whitespace_and_name_dots_are_what_the_code_folds() -> None:
    whitespace = [ord(c) for c in BMP if _folds_to("text", f"a{c}b", "a b")]
    assert f"`{_code_points(whitespace)}`" in DOC
    dots = [ord(c) for c in BMP if _folds_to("person_name", f"张 {c} 三", "张\u00b7三")]
    assert f"`{' '.join(f'U+{p:04X}' for p in dots)}`" in DOC


ALL_CODE_POINTS = [chr(p) for p in range(0x110000) if not 0xD800 <= p <= 0xDFFF]


def test_protocol_md_invisible_characters_are_what_the_code_removes() -> None:
    removed = [ord(c) for c in ALL_CODE_POINTS if _folds_to("text", f"a{c}b", "ab")]
    assert f"`{_code_points(removed)}`" in DOC


def _doc_code_points(after: str) -> set[int]:
    """The code points of the first code span listing ``U+`` points after ``after`` in the doc."""
    span = re.search(r"`(U\+[0-9A-F]{4,6}[^`]*)`", DOC[DOC.index(after) :])
    assert span is not None
    points: set[int] = set()
    for part in span.group(1).split():
        first, _, last = part.partition("..")
        points.update(range(int(first[2:], 16), int((last or first)[2:], 16) + 1))
    return points


def test_protocol_md_han_characters_are_those_whose_spaces_go() -> None:
    han = _doc_code_points("The Han characters, after NFKC, are")
    for c in ALL_CODE_POINTS:
        if unicodedata.normalize("NFKC", c) != c:
            continue  # only what NFKC leaves is ever looked at
        assert _folds_to("person_name", f"{c} {c}", c + c) is (ord(c) in han), f"U+{ord(c):04X}"


def test_protocol_md_name_dots_after_nfkc_are_those_it_lists_as_typed() -> None:
    after_nfkc = _doc_code_points("The name dots, after NFKC, are")
    as_typed = _doc_code_points("as typed, every character of this list is a name dot")
    assert after_nfkc <= as_typed
    assert {ord(c) for p in as_typed for c in unicodedata.normalize("NFKC", chr(p))} == after_nfkc


def test_protocol_md_provinces_are_what_the_code_accepts() -> None:
    def accepted(code: int) -> bool:
        body = f"{code:02d}010019900101001"
        valid = body + resident_id_check_character(body)
        return _folds_to("cn_resident_id", valid, valid)

    provinces = [code for code in range(10, 100) if accepted(code)]
    assert not any(accepted(code) for code in range(10))
    assert f"accepted: {_runs(provinces, lambda c: f'`{c}`', '..', ', ')}." in DOC_FLAT


def test_the_vectors_and_protocol_md_state_the_canonical_version() -> None:
    assert load("fields")["canonical_version"] == CANONICAL_VERSION
    assert RECORDS["canonical_version"] == CANONICAL_VERSION
    assert (
        RECORDS["record_label"].encode() == RECORD_LABEL == b"bidui-record-v%d" % CANONICAL_VERSION
    )
    assert f"**canonical version {CANONICAL_VERSION}**" in DOC_FLAT
    assert f"today `{CANONICAL_VERSION}`" in DOC_FLAT
    for case in RECORDS["records"]:
        if "canonical_hex" in case:
            assert bytes.fromhex(case["canonical_hex"]).startswith(RECORD_LABEL)


def test_protocol_md_states_the_code_constants() -> None:
    facts = [
        f'"{RECORD_LABEL.decode()}"',
        f'"{HASH_LABEL.decode()}"',
        f"({len(RECORD_LABEL)} ASCII bytes",
        f"{len(HASH_LABEL)} ASCII bytes",
        f"`tag_length` = {TAG_LENGTH}",
        f"**first {ENTRY_LENGTH} bytes**",
        f"at most {MAX_PURPOSE_CHARS} characters",
        f"min(`max_batch_items`, {MAX_VERIFIABLE_BATCH})",
        f"`{SUITE_ID}`",
        context_string(Mode.VOPRF).hex(),
        "urn:bidui:department:",
        '"bidui key v1"',
    ]
    missing = [fact for fact in facts if fact not in DOC_FLAT]
    assert not missing


def _rpc_path_sources() -> list[str]:
    """The source of the servicers and every provider_node module they import, directly or
    not."""
    seen: set[str] = set()
    todo = [
        "provider_node.transport.guarded",
        "provider_node.transport.catalog_servicer",
        "provider_node.transport.comparison_servicer",
        "provider_node.transport.sharing_servicer",
        "provider_node.transport.discrepancy_servicer",
    ]
    sources = []
    while todo:
        name = todo.pop()
        if name in seen or name in ("provider_node.core.errors", "provider_node.transport.status"):
            continue
        seen.add(name)
        source = inspect.getsource(importlib.import_module(name))
        sources.append(source)
        for found in ast.walk(ast.parse(source)):
            if isinstance(found, ast.ImportFrom) and (found.module or "").startswith("provider_"):
                module = found.module or ""
                if module == "provider_node":
                    todo += [f"provider_node.{alias.name}" for alias in found.names]
                else:
                    todo.append(module)
    return sources


def _errors_raised_on_the_rpc_path() -> set[type[errors.NodeError]]:
    """The ``NodeError`` classes constructed anywhere on the path of an RPC."""
    names: set[str] = set()
    for source in _rpc_path_sources():
        names |= set(re.findall(r"\b([A-Z]\w*)\(", source))
    found = {getattr(errors, name, None) for name in names}
    return {c for c in found if isinstance(c, type) and issubclass(c, errors.NodeError)}


def test_protocol_md_lists_every_status_the_rpcs_can_refuse_with() -> None:
    raised = _errors_raised_on_the_rpc_path()
    assert {errors.UnauthenticatedError, errors.SessionExpiredError} <= raised
    rows = [line for line in DOC.splitlines() if line.startswith("| `")]
    for cls in raised:
        code = status.status_code(cls.__new__(cls))
        assert any(f"`{code.name}`" in row and f"`{cls.reason}`" in row for row in rows), cls
    assert status.status_code(RuntimeError()) is grpc.StatusCode.INTERNAL
    for code in ("INTERNAL", "DEADLINE_EXCEEDED", "UNAVAILABLE", "RESOURCE_EXHAUSTED"):
        assert any(row.startswith(f"| `{code}`") for row in rows), code


def test_protocol_md_worked_examples_are_vectors() -> None:
    first = RECORDS["records"][0]
    resource = resource_vector(first["resource_id"], first["key_version"])
    for value in (first["canonical_hex"], first["hmac_tag_hex"], resource["hmac_key_hex"]):
        assert value in DOC
    match = next(c for c in load("match_bits")["cases"] if c["matches"] == "110100000101")
    assert match["match_bits_hex"] == "0b0a" and "`0b 0a`" in DOC
