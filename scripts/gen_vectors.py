"""Generate the wire-contract test vectors in docs/vectors/ from the project's own code.

docs/PROTOCOL.md describes the bytes; these files pin them down. Every value is computed here by
``comparator`` and ``provider_node.resources.keys`` exactly as the SDK and the node compute it, and
tests/protocol/test_protocol_vectors.py recomputes every one, so the document, the vectors and the
code cannot drift apart. Usage: ``python scripts/gen_vectors.py [OUTPUT_DIR]`` (default
docs/vectors). The secrets below are TEST VALUES, published on purpose: never use them on a node.
"""

from __future__ import annotations

import hashlib
import json
import sys
import unicodedata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from comparator import group  # noqa: E402
from comparator.canonical import (  # noqa: E402
    CANONICAL_VERSION,
    RECORD_LABEL,
    ComparisonKey,
    Domain,
    canonicalize,
    encode_values,
)
from comparator.errors import FieldError  # noqa: E402
from comparator.fields import (  # noqa: E402
    normalize,
    resident_id_check_character,
    uscc_check_character,
)
from comparator.index import pack_matches  # noqa: E402
from comparator.keyed_hash import HASH_LABEL, KeyedHasher  # noqa: E402
from comparator.oprf import (  # noqa: E402
    SUITE_ID,
    Evaluation,
    Mode,
    OprfClient,
    OprfServer,
    VoprfClient,
    VoprfServer,
)
from comparator.oprf._testing import blind_evaluate_with_nonce, blind_with  # noqa: E402
from comparator.oprf.dleq import compute_composites  # noqa: E402
from comparator.oprf.suite import SUITES, context_string  # noqa: E402
from provider_node.resources.keys import NodeKeys, key_info  # noqa: E402

OUT_DIR = ROOT / "docs" / "vectors"
FORMAT = 1
GENERATED_BY = "scripts/gen_vectors.py"

# Blinded mode's default RFC 9497 mode (the resource option oprf_modes; modeVOPRF on request).
OPRF_MODE = Mode.OPRF
MODE_NAMES = {Mode.OPRF: "modeOPRF", Mode.VOPRF: "modeVOPRF", Mode.POPRF: "modePOPRF"}

# TEST secrets: the node's two 32-byte master secrets (keys.dir/oprf_seed, keys.dir/hmac_master).
TEST_OPRF_SEED = bytes(range(0x00, 0x20))
TEST_HMAC_MASTER = bytes(range(0x20, 0x40))


def _test_scalar(label: str) -> bytes:
    """A fixed non-zero scalar for a TEST blind or proof nonce (never do this outside tests)."""
    return group.scalar_reduce(hashlib.sha512(b"bidui test vector " + label.encode()).digest())


# ---- field normalisation ---------------------------------------------------------------------


def _id(body17: str) -> str:
    """A resident ID with its correct check character."""
    return body17 + resident_id_check_character(body17)


def _uscc(body17: str) -> str:
    return body17 + uscc_check_character(body17)


def _wide(text: str) -> str:
    """ASCII letters and digits as their full-width forms (U+FF01..U+FF5E)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


ID_A = _id("51050219850315007")  # a check digit 5
ID_X = _id("11010519491231002")  # check character X
ID_B15 = "510502850315003"  # first generation: 15 digits, born 1985-03-15
USCC_A = _uscc("91510500MA62X8K1W")
BAD_CHECK_ID = ID_A[:17] + ("0" if ID_A[17] != "0" else "1")

# (field type, input, note); None stands for a missing value (JSON null).
FIELD_CASES: list[tuple[str, str | None, str]] = [
    ("cn_resident_id", ID_A, "18 digits, correct check digit"),
    ("cn_resident_id", ID_X, "check character X"),
    ("cn_resident_id", ID_X[:17] + "x", "lower-case x becomes X"),
    ("cn_resident_id", _wide(ID_A), "full-width digits fold to ASCII (NFKC)"),
    ("cn_resident_id", _wide(ID_X[:17] + "x"), "full-width digits and full-width lower-case x"),
    ("cn_resident_id", f" \t{ID_A}\u3000", "leading and trailing whitespace is trimmed"),
    ("cn_resident_id", ID_B15, "15-digit first-generation ID: '19' inserted, check digit added"),
    ("cn_resident_id", _wide(ID_B15), "15-digit ID in full-width digits"),
    ("cn_resident_id", _id("11010520000229001"), "29 February of a leap year"),
    ("cn_resident_id", BAD_CHECK_ID, "wrong check digit"),
    ("cn_resident_id", ID_X[:17] + "Y", "last character neither digit nor X"),
    ("cn_resident_id", ID_A[:6] + " " + ID_A[6:], "a space inside: 19 characters"),
    ("cn_resident_id", ID_A[:17], "17 characters"),
    ("cn_resident_id", ID_A[:10] + "A" + ID_A[11:], "a letter among the first 17"),
    ("cn_resident_id", "x" + ID_A[1:], "x is only allowed last"),
    ("cn_resident_id", ID_A[:16] + "\u0661" + ID_A[17], "ARABIC-INDIC DIGIT ONE is not folded"),
    ("cn_resident_id", ID_A[:6] + "-" + ID_A[6:14] + "-" + ID_A[14:], "dashes are not removed"),
    ("cn_resident_id", _id("51050219851301001"), "month 13"),
    ("cn_resident_id", _id("81000019900101001"), "810000: a Hong Kong resident's residence permit"),
    ("cn_resident_id", _id("83000019900101008")[:17] + "x", "830000: a Taiwan resident's permit"),
    ("cn_resident_id", _id("71000019900101003"), "71: Taiwan in GB/T 2260"),
    ("cn_resident_id", f"\ufeff{ID_A}", "a byte order mark before the number is removed"),
    ("cn_resident_id", f"{ID_A[:6]}\u200b{ID_A[6:]}", "a zero-width space inside is removed"),
    ("cn_resident_id", _id("00000019900101001"), "province 00"),
    ("cn_resident_id", "000000000000000000", "all zeros: the province is checked first"),
    ("cn_resident_id", _id("16010019900101001"), "province 16: no such province"),
    ("cn_resident_id", _id("84010019900101001"), "province 84: no such province"),
    ("cn_resident_id", _id("99010219900101001"), "first digit 9: a foreigner's card"),
    ("cn_resident_id", _id("93510019900101001")[:17] + "0", "9 is reported before the check"),
    ("cn_resident_id", "990102900101001", "15 digits, province 99"),
    ("cn_resident_id", _id("51050219850230001"), "30 February"),
    ("cn_resident_id", _id("51050219000229001"), "29 February 1900 (not a leap year)"),
    ("cn_resident_id", _id("51050217991231001"), "born before 1800"),
    ("cn_resident_id", _id("51050229990101001"), "born in the future"),
    ("cn_resident_id", "51050285031500X", "15 characters must all be digits"),
    ("cn_resident_id", "510502851315003", "15 digits, month 13"),
    ("cn_resident_id", "", "empty"),
    ("cn_resident_id", " \u3000 ", "only whitespace"),
    ("cn_resident_id", None, "missing"),
    ("cn_uscc", USCC_A, "18 characters, correct check character"),
    ("cn_uscc", USCC_A.lower(), "lower case is upper-cased"),
    ("cn_uscc", _wide(USCC_A.lower()), "full-width fold to ASCII, then upper case"),
    ("cn_uscc", f"  {USCC_A} ", "trimmed"),
    ("cn_uscc", USCC_A[:17] + ("0" if USCC_A[17] != "0" else "1"), "wrong check character"),
    ("cn_uscc", "91510500MA62X8K1" + "O" + USCC_A[17], "the letter O is not in the alphabet"),
    ("cn_uscc", USCC_A[:8] + " " + USCC_A[8:], "a space inside: 19 characters"),
    ("cn_uscc", USCC_A[:17], "17 characters"),
    ("cn_uscc", "", "empty"),
    ("person_name", "张三", "unchanged"),
    ("person_name", " 张三\t", "trimmed"),
    ("person_name", "张 三", "a space between Han characters is removed"),
    ("person_name", "张\u3000三", "ideographic space between Han characters: removed"),
    ("person_name", "欧阳\u00a0\t娜娜", "NO-BREAK SPACE and tab between Han characters: removed"),
    ("person_name", "欧 阳 娜 娜", "every space between Han characters"),
    ("person_name", "张 San", "a space between Han and Latin: one space, kept"),
    ("person_name", "王 \ue000", "a private-use character counts as Han"),
    ("person_name", "\U00020000 \U00020001", "Extension B ideographs count as Han"),
    ("person_name", "Zhang\u00a0\u00a0San", "NO-BREAK SPACEs: one ASCII space"),
    ("person_name", "Zhang\t\n San", "a run of tab, newline and space: one space"),
    ("person_name", "zhang san", "no case folding"),
    ("person_name", _wide("ZHANG"), "full-width Latin letters fold to ASCII"),
    ("person_name", "阿卜杜拉·买买提", "U+00B7 MIDDLE DOT, the canonical separator"),
    ("person_name", "阿卜杜拉 · 买买提", "spaces around a dot are dropped"),
    ("person_name", "阿卜杜拉\u30fb买买提", "KATAKANA MIDDLE DOT becomes U+00B7"),
    ("person_name", "阿卜杜拉\uff65买买提", "HALFWIDTH KATAKANA MIDDLE DOT becomes U+00B7"),
    ("person_name", "阿卜杜拉\u2022买买提", "BULLET becomes U+00B7"),
    ("person_name", "阿卜杜拉\u0387买买提", "GREEK ANO TELEIA becomes U+00B7 (already by NFKC)"),
    ("person_name", "阿依古丽.买买提", "FULL STOP becomes U+00B7"),
    ("person_name", "阿依古丽。买买提", "IDEOGRAPHIC FULL STOP becomes U+00B7"),
    ("person_name", "阿依古丽\uff0e买买提", "FULLWIDTH FULL STOP: NFKC gives '.', then U+00B7"),
    ("person_name", "阿依古丽\uff61买买提", "HALFWIDTH IDEOGRAPHIC FULL STOP: NFKC, then U+00B7"),
    ("person_name", "阿依古丽\u2027买买提", "HYPHENATION POINT becomes U+00B7"),
    ("person_name", "阿依古丽\u2e33买买提", "RAISED DOT becomes U+00B7"),
    ("person_name", "阿依古丽 。. 买买提", "a run of dots and spaces: one U+00B7"),
    ("person_name", "阿依古丽\u3000·\u3000买买提", "ideographic spaces around a dot go with it"),
    ("person_name", "阿依古丽·买买提。", "a dot at the end is removed"),
    ("person_name", "· 阿依古丽·买买提", "a dot at the start is removed"),
    ("person_name", "阿依古丽买买提", "no dot: not the same as with one"),
    ("person_name", "J. Smith", "Latin initials: the full stop is a name dot too"),
    ("person_name", "张\u200b三", "ZERO WIDTH SPACE is removed"),
    ("person_name", "\ufeff张三", "a byte order mark is removed"),
    ("person_name", "张\u200d\u2060三\u00ad", "ZWJ, WORD JOINER, SOFT HYPHEN are removed"),
    ("person_name", "\u200e张三\u200f", "LEFT-TO-RIGHT and RIGHT-TO-LEFT MARKs are removed"),
    ("person_name", "张\ufe00三", "a variation selector is removed"),
    ("person_name", "Jose\u200b\u0301", "removed before NFKC: the accent composes with e"),
    ("person_name", "張三", "traditional characters are kept: not folded to simplified"),
    ("person_name", "乾隆", "乾 is kept (not 干)"),
    ("person_name", "\uf90a三", "a CJK compatibility ideograph: NFKC gives the unified one"),
    ("person_name", "张\x00三", "NUL"),
    ("person_name", "张\x1b三", "ESC"),
    ("person_name", "张\u0085三", "NEXT LINE (U+0085) is whitespace: folded, not refused"),
    ("person_name", "", "empty"),
    ("person_name", "\u200b", "only a zero-width space: empty"),
    ("person_name", " · ", "only a dot: empty"),
    ("person_name", None, "missing"),
    ("phone", "13800138000", "mobile"),
    ("phone", "138-0013-8000", "dashes removed"),
    ("phone", "(138) 0013.8000", "brackets, spaces and dots removed"),
    ("phone", _wide("13800138000"), "full-width digits"),
    ("phone", "+86 138 0013 8000", "+86 mobile"),
    ("phone", "0086-13800138000", "0086 mobile"),
    ("phone", "8613800138000", "86 before a mobile, without + or 00"),
    ("phone", "028-8888 8888", "landline with area code"),
    ("phone", "+86 28 8888 8888", "+86 landline: the trunk 0 comes back"),
    ("phone", "+86 028 8888 8888", "+86 with the trunk 0 kept: NOT the same as 028 8888 8888"),
    ("phone", "8888 8888", "local number, 8 digits"),
    ("phone", "+1 (202) 555-0143", "foreign number: 00 and the country code"),
    ("phone", "001 202 555 0143", "foreign number written with 00"),
    ("phone", "12345678901", "11 digits starting 12"),
    ("phone", "1380013800", "10 digits starting 1"),
    ("phone", "028-8888", "landline too short"),
    ("phone", "123456", "6 digits starting 1: judged as a mobile number"),
    ("phone", "654321", "local number too short"),
    ("phone", "+1 234", "foreign number too short"),
    ("phone", "138 0013 8000 ext 1", "letters"),
    ("phone", "138\t0013\t8000", "tabs are not removed"),
    ("phone", "+", "nothing after +"),
    ("phone", "", "empty"),
    ("date", "2024-01-05", "ISO"),
    ("date", "2024/1/5", "slashes, one-digit month and day"),
    ("date", "2024.01.05", "dots"),
    ("date", "20240105", "8 digits"),
    ("date", "2024年1月5日", "Chinese"),
    ("date", "2024年1月5", "Chinese without 日"),
    ("date", _wide("2024-01-05"), "full-width digits and hyphen"),
    ("date", " 2024-01-05\t", "trimmed"),
    ("date", "1800-01-01", "no range limit outside resident IDs"),
    ("date", "2024-01/05", "two different separators"),
    ("date", "2024 01 05", "spaces as separators"),
    ("date", "24-01-05", "two-digit year"),
    ("date", "2024-01-05T00:00", "time of day"),
    ("date", "2024-001-05", "three-digit month"),
    ("date", "2023-02-29", "29 February of a common year"),
    ("date", "2024-13-01", "month 13"),
    ("date", "20240230", "30 February"),
    ("date", "0000-01-01", "year 0"),
    ("date", "", "empty"),
    ("text", "泸州市", "unchanged"),
    ("text", "Luzhou  City", "a double space inside: one space"),
    ("text", "\tLuzhou\u3000City ", "trimmed, ideographic space: one space"),
    ("text", _wide("ABC"), "full-width Latin letters"),
    ("text", "\u216b", "ROMAN NUMERAL TWELVE: NFKC gives XII"),
    ("text", "\ufb01le", "LATIN SMALL LIGATURE FI: NFKC gives fi"),
    ("text", "\u2460", "CIRCLED DIGIT ONE: NFKC gives 1"),
    ("text", "Luzhou \u00b7 City", "no dot folding in text"),
    ("text", "泸州 老窖", "text keeps the space between Han characters"),
    ("text", "泸州\u200b老窖\ufeff", "format characters are removed from every type"),
    ("text", "a\x00b", "NUL"),
    ("text", "", "empty"),
    ("integer", "42", "plain"),
    ("integer", "+42", "plus sign dropped"),
    ("integer", "-42", "negative"),
    ("integer", "007", "leading zeros dropped"),
    ("integer", "-0", "minus zero is 0"),
    ("integer", "+000", "zeros are 0"),
    ("integer", " 42 ", "trimmed"),
    ("integer", _wide("42"), "full-width digits"),
    ("integer", "1,000", "thousands separator"),
    ("integer", "4.0", "decimal point"),
    ("integer", "1e3", "exponent"),
    ("integer", "--1", "two signs"),
    ("integer", "0x10", "hexadecimal"),
    ("integer", "", "empty"),
]


def field_vectors() -> dict[str, Any]:
    cases = []
    for field_type, value, note in FIELD_CASES:
        case: dict[str, Any] = {"type": field_type, "input": value, "note": note}
        try:
            case["output"] = normalize(field_type, value)
        except FieldError as error:
            case["error"] = error.reason
        cases.append(case)
    return {
        "format": FORMAT,
        "generated_by": GENERATED_BY,
        "description": (
            "Per-field normalisation (docs/PROTOCOL.md, 'Field types'). A case has 'output' (the "
            "canonical string) or 'error' (the record is refused; the reason the reference "
            "implementation gives). 'input' null means the value is missing."
        ),
        "canonical_version": CANONICAL_VERSION,
        "unicode_version": unicodedata.unidata_version,
        "cases": cases,
    }


# ---- records: canonical bytes, HMAC tags, OPRF outputs -----------------------------------------

RESIDENT_FIELDS = {"id_number": "cn_resident_id", "name": "person_name", "birth_date": "date"}
RESIDENT_KEYS = {
    "id_number": ["id_number"],
    "id_number+name": ["id_number", "name"],
    "name+birth_date": ["name", "birth_date"],
}
# (resource id, key version, field types, comparison keys)
RESOURCES: list[tuple[str, int, dict[str, str], dict[str, list[str]]]] = [
    ("residents", 1, RESIDENT_FIELDS, RESIDENT_KEYS),
    ("residents", 2, RESIDENT_FIELDS, {"id_number": ["id_number"]}),
    (
        "enterprises",
        1,
        {"uscc": "cn_uscc", "company_name": "text", "employees": "integer"},
        {"uscc": ["uscc"], "company_name+employees": ["company_name", "employees"]},
    ),
    (
        "contacts",
        1,
        {"phone": "phone", "name": "person_name"},
        {"phone": ["phone"], "name+phone": ["name", "phone"]},
    ),
    ("notes", 1, {"a": "text", "b": "text"}, {"a+b": ["a", "b"]}),
]

# (resource id, key version, comparison key, record, note)
RECORD_CASES: list[tuple[str, int, str, dict[str, str | None], str]] = [
    ("residents", 1, "id_number", {"id_number": ID_A}, "one field"),
    ("residents", 1, "id_number", {"id_number": _wide(ID_A)}, "full-width: same bytes as above"),
    ("residents", 1, "id_number", {"id_number": ID_X}, "check character X"),
    ("residents", 1, "id_number", {"id_number": ID_X[:17] + "x"}, "lower-case x: same as above"),
    ("residents", 1, "id_number", {"id_number": ID_B15}, "15-digit ID, upgraded to 18"),
    (
        "residents",
        1,
        "id_number+name",
        {"id_number": ID_A, "name": "张三"},
        "two fields; the name is 6 UTF-8 bytes",
    ),
    (
        "residents",
        1,
        "id_number+name",
        {"id_number": ID_A.lower(), "name": " 张三\t", "birth_date": "ignored"},
        "fields outside the key are ignored; same bytes as above",
    ),
    (
        "residents",
        1,
        "id_number+name",
        {"id_number": ID_X, "name": "阿卜杜拉 ・ 买买提"},
        "middle dot folded to U+00B7",
    ),
    (
        "residents",
        1,
        "name+birth_date",
        {"name": "Zhang\u00a0San", "birth_date": "1985年3月15日"},
        "person name and date",
    ),
    (
        "residents",
        1,
        "id_number+name",
        {"id_number": _wide(ID_X[:17] + "x"), "name": "阿卜杜拉。买买提"},
        "full-width ID, ideographic full stop: same bytes as the middle-dot record above",
    ),
    (
        "residents",
        1,
        "id_number+name",
        {"id_number": ID_A, "name": "张\u3000\u200b三"},
        "ideographic and zero-width spaces: same bytes as 张三 above",
    ),
    (
        "residents",
        1,
        "id_number",
        {"id_number": _id("99010219900101001")},
        "a foreigner's permanent residence number is no resident ID",
    ),
    (
        "residents",
        1,
        "id_number+name",
        {"id_number": BAD_CHECK_ID, "name": "张\x00三"},
        "two bad fields: the first in key order is reported",
    ),
    ("residents", 1, "id_number+name", {"id_number": ID_A}, "a key field is absent"),
    (
        "residents",
        1,
        "name+birth_date",
        {"name": "李四", "birth_date": "2023-02-29"},
        "invalid date",
    ),
    ("residents", 2, "id_number", {"id_number": ID_A}, "key version 2: other bytes, tag, output"),
    ("enterprises", 1, "uscc", {"uscc": USCC_A}, "unified social credit code"),
    ("enterprises", 1, "uscc", {"uscc": USCC_A.lower()}, "lower case: same bytes as above"),
    (
        "enterprises",
        1,
        "company_name+employees",
        {"company_name": "泸州  老窖", "employees": "0042"},
        "text and integer",
    ),
    ("contacts", 1, "phone", {"phone": "+86 138 0013 8000"}, "phone"),
    (
        "contacts",
        1,
        "name+phone",
        {"name": "王五", "phone": "028-8888 8888"},
        "person name and landline",
    ),
    ("notes", 1, "a+b", {"a": "ab", "b": "c"}, "('ab', 'c')"),
    ("notes", 1, "a+b", {"a": "a", "b": "bc"}, "('a', 'bc'): other bytes than ('ab', 'c')"),
]


def _node_keys() -> NodeKeys:
    return NodeKeys(Path("unused"), TEST_OPRF_SEED, TEST_HMAC_MASTER)


def _comparison_key(resource_id: str, version: int, name: str) -> ComparisonKey:
    for rid, ver, fields, keys in RESOURCES:
        if (rid, ver) == (resource_id, version):
            return ComparisonKey.from_names(name, keys[name], fields)
    raise KeyError((resource_id, version))


def record_vectors() -> dict[str, Any]:
    node_keys = _node_keys()
    resources = []
    for resource_id, version, fields, keys in RESOURCES:
        sk, pk = node_keys.oprf_key_pair(resource_id, version, Mode.OPRF)
        vsk, vpk = node_keys.oprf_key_pair(resource_id, version, Mode.VOPRF)
        domains = []
        for key_name, members in keys.items():
            domain = Domain(resource_id, key_name, version).encode()
            domains.append(
                {
                    "comparison_key": key_name,
                    "fields": members,
                    "domain_hex": domain.hex(),
                    "hmac_prefix_hex": (HASH_LABEL + domain).hex(),
                }
            )
        resources.append(
            {
                "resource_id": resource_id,
                "key_version": version,
                "fields": fields,
                "hmac_key_info_hex": key_info(b"hmac", resource_id, version).hex(),
                "hmac_key_hex": node_keys.hmac_key(resource_id, version).hex(),
                "oprf_key_info_hex": key_info(b"oprf", resource_id, version).hex(),
                "oprf_private_key_hex": sk.hex(),
                "oprf_public_key_hex": pk.hex(),
                "voprf_private_key_hex": vsk.hex(),
                "voprf_public_key_hex": vpk.hex(),
                "comparison_keys": domains,
            }
        )
    records = []
    for resource_id, version, key_name, record, note in RECORD_CASES:
        key = _comparison_key(resource_id, version, key_name)
        case: dict[str, Any] = {
            "resource_id": resource_id,
            "key_version": version,
            "comparison_key": key_name,
            "note": note,
            "record": record,
        }
        try:
            values = canonicalize(key, record)
        except FieldError as error:
            case["error"] = {"field": error.field, "reason": error.reason}
            records.append(case)
            continue
        domain = Domain(resource_id, key_name, version)
        encoded = encode_values(domain, values)
        hmac_key = node_keys.hmac_key(resource_id, version)
        server = OprfServer(node_keys.oprf_key_pair(resource_id, version, Mode.OPRF)[0])
        verifiable = VoprfServer(node_keys.oprf_key_pair(resource_id, version, Mode.VOPRF)[0])
        case["canonical_values"] = list(values)
        case["canonical_hex"] = encoded.hex()
        case["hmac_tag_hex"] = KeyedHasher(hmac_key, domain).tag(encoded).hex()
        case["oprf_output_hex"] = server.evaluate(encoded).hex()
        case["voprf_output_hex"] = verifiable.evaluate(encoded).hex()
        records.append(case)
    return {
        "format": FORMAT,
        "generated_by": GENERATED_BY,
        "description": (
            "Raw record -> canonical record bytes -> HMAC-SHA-256 tag and OPRF output: modeOPRF "
            "(oprf_output_hex, the default) and modeVOPRF (voprf_output_hex), each mode under its "
            "own key (docs/PROTOCOL.md). Keys are derived from the TEST master secrets below "
            "exactly as a node derives them (provider_node/resources/keys.py). "
            "TEST VALUES ONLY: never use them."
        ),
        "canonical_version": CANONICAL_VERSION,
        "record_label": RECORD_LABEL.decode("ascii"),
        "suite": SUITE_ID,
        "oprf_mode": MODE_NAMES[OPRF_MODE],
        "test_secrets": {
            "oprf_seed_hex": TEST_OPRF_SEED.hex(),
            "hmac_master_hex": TEST_HMAC_MASTER.hex(),
        },
        "resources": resources,
        "records": records,
    }


# ---- one blinded comparison step by step ---------------------------------------------------------

BLINDED_RESOURCE = ("residents", 1, "id_number+name")
BLINDED_RECORDS = [
    {"id_number": ID_A, "name": "张三"},
    {"id_number": ID_X, "name": "阿卜杜拉·买买提"},
    {"id_number": ID_B15, "name": "李四"},
]


def _blinded_steps(mode: Mode) -> dict[str, Any]:
    """One blinded comparison in ``mode`` (modeOPRF or modeVOPRF), every intermediate value."""
    resource_id, version, key_name = BLINDED_RESOURCE
    suite = SUITES[mode]
    sk, pk = _node_keys().oprf_key_pair(resource_id, version, mode)
    domain = Domain(resource_id, key_name, version)
    key = _comparison_key(resource_id, version, key_name)
    inputs = [encode_values(domain, canonicalize(key, record)) for record in BLINDED_RECORDS]
    blinds = [_test_scalar(f"blind {i}") for i in range(len(inputs))]
    steps: dict[str, Any] = {
        "oprf_mode": MODE_NAMES[mode],
        "context_string_hex": context_string(mode).hex(),
        "hash_to_group_dst_hex": suite.hash_to_group_dst.hex(),
        "hash_to_scalar_dst_hex": suite.hash_to_scalar_dst.hex(),
    }
    client: OprfClient | VoprfClient
    if mode is Mode.VOPRF:
        nonce = _test_scalar("proof nonce")
        client = VoprfClient(pk)
        blinded = blind_with(client, inputs, blinds)
        evaluation = blind_evaluate_with_nonce(VoprfServer(sk), blinded.message, nonce)
        assert evaluation.proof is not None
        composite_m, composite_z = compute_composites(
            suite, pk, blinded.message, evaluation.elements
        )
        steps["oprf_public_key_hex"] = pk.hex()
        steps["proof"] = {
            "nonce_hex": nonce.hex(),
            "composite_m_hex": composite_m.hex(),
            "composite_z_hex": composite_z.hex(),
            "proof_hex": evaluation.proof.hex(),
        }
    else:
        client = OprfClient()
        blinded = blind_with(client, inputs, blinds)
        evaluation = OprfServer(sk).blind_evaluate(blinded.message)
    outputs = client.finalize(blinded.state, Evaluation(evaluation.elements, evaluation.proof))
    items = []
    for i, record in enumerate(BLINDED_RECORDS):
        element = group.hash_to_group(inputs[i], suite.hash_to_group_dst)
        items.append(
            {
                "record": record,
                "input_hex": inputs[i].hex(),
                "input_element_hex": element.hex(),
                "blind_hex": blinds[i].hex(),
                "blinded_element_hex": blinded.message[i].hex(),
                "evaluated_element_hex": evaluation.elements[i].hex(),
                "unblinded_element_hex": group.scalar_mult(sk, element).hex(),
                "output_hex": outputs[i].hex(),
            }
        )
    steps["items"] = items
    return steps


def blinded_vectors() -> dict[str, Any]:
    resource_id, version, key_name = BLINDED_RESOURCE
    return {
        "format": FORMAT,
        "generated_by": GENERATED_BY,
        "description": (
            "One blinded comparison of three records, every intermediate value, with fixed TEST "
            "blinds (docs/PROTOCOL.md, 'Blinded mode'): at the top level in modeOPRF (the "
            "default, no proof), under 'voprf' in modeVOPRF with a fixed TEST proof nonce. Each "
            "mode's key pair is records.json's for this resource and key version (oprf_* and "
            "voprf_*). A real client draws a fresh random blind per item and request; a real "
            "node a fresh nonce per proof."
        ),
        "suite": SUITE_ID,
        "resource_id": resource_id,
        "key_version": version,
        "comparison_key": key_name,
        **_blinded_steps(Mode.OPRF),
        "voprf": _blinded_steps(Mode.VOPRF),
    }


# ---- match bits ---------------------------------------------------------------------------------

# Item i's match flag is character i ("1" matched, "0" not).
MATCH_CASES = ["1", "01", "10000000", "000000001", "110100000101", "1" * 17]


def match_bit_vectors() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "generated_by": GENERATED_BY,
        "description": (
            "MatchResult.match_bits: item i is bit (i % 8) of byte (i // 8), least significant "
            "bit first; unused high bits of the last byte are zero. 'matches' has one character "
            "per item in request order: '1' matched, '0' not."
        ),
        "cases": [
            {"matches": flags, "match_bits_hex": pack_matches([f == "1" for f in flags]).hex()}
            for flags in MATCH_CASES
        ],
    }


# ---- output --------------------------------------------------------------------------------


def _visible(text: str) -> str:
    """JSON text with invisible and look-alike characters written as \\u escapes."""

    def escape(c: str) -> str:
        if c.isascii() and (c.isprintable() or c == "\n"):
            return c
        category = unicodedata.category(c)
        if category[0] in "ZC" or category == "Po" or 0xFF00 <= ord(c) <= 0xFFEF:
            return json.dumps(c)[1:-1]  # \\uXXXX (a surrogate pair beyond the BMP)
        return c

    return "".join(map(escape, text))


def render() -> dict[str, str]:
    """Every vector file's name and exact content."""
    files = {
        "fields.json": field_vectors(),
        "records.json": record_vectors(),
        "blinded.json": blinded_vectors(),
        "match_bits.json": match_bit_vectors(),
    }
    return {
        name: _visible(json.dumps(data, ensure_ascii=False, indent=2)) + "\n"
        for name, data in files.items()
    }


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else OUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (out / name).write_text(text, encoding="utf-8")
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
