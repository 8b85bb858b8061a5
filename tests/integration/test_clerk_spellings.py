"""What clerks type, end to end: a CSV of awkward spellings against a real node over mutual TLS.

The provider's register holds some people as its own clerks typed them (a full stop for the
middle dot, a space inside a Han name, a 15-digit first-generation ID, a zero-width space); the
requesting department's CSV spells the same people otherwise (ideographic and no-break spaces,
every kind of dot, full-width digits, a lower-case x, a byte order mark). In both modes none of
them may come back not matched, and invalid ID numbers come back as errors with their reasons.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from client_sdk.files.csv_io import read_csv
from comparator.fields import resident_id_check_character
from provider_node.config import load_config
from provider_node.resources.catalog import build_catalog
from provider_node.resources.keys import NodeKeys
from provider_node.resources.loader import load_resource
from provider_node.setup.runtime import open_node, start_node
from provider_node.setup.sample_data import add_residents
from tests.integration.conftest import NodeUnderTest, start

PURPOSE = "integration test: clerks' spellings"


def _id(body17: str) -> str:
    return body17 + resident_id_check_character(body17)


def _wide(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _spaced(name: str, space: str) -> str:
    return space.join(name)


AYGUL = _id("51050219900305123")
NANA = _id("51050319880712246")
DILRABA = _id("51050419920403352")
HONG_KONG = _id("81000019750102101")  # a Hong Kong resident's residence permit
TAIWAN = _id("83000019900101008")  # a Taiwan resident's permit; its check character is X
FIRST_GENERATION = "510521850315003"  # 15 digits, as the register still holds it
ZHAO = _id("51052219700809456")

# As the provider's clerks typed them into the register.
REGISTER = [
    (AYGUL, "阿依古丽·买买提", "1990-03-05"),
    (NANA, "欧阳 娜娜", "1988-07-12"),
    (DILRABA, "迪丽热巴.迪力木拉提", "1992-04-03"),
    (HONG_KONG, "陈大文", "1975-01-02"),
    (TAIWAN[:17] + "x", "林志明", "1990-01-01"),
    (FIRST_GENERATION, "王\u3000芳", "1985-03-15"),
    (ZHAO, "赵\u200b敏", "1970-08-09"),
]

UNKNOWN_PROVINCE = "contains an unknown province code (digits 1-2)"
FOREIGNER = "begins with 9: a foreigner's permanent residence card number, not a resident ID"


def _requester_rows(node: NodeUnderTest) -> list[tuple[str, str, str]]:
    """(id_number, name, expected): ``same``, ``other`` (right ID, another name), ``error:…``."""
    rows: list[tuple[str, str, str]] = []
    spacings = ["\u3000", "\u00a0", "\u200b", "\t", " ", "\u2002", "\ufeff"]
    for i, (id_number, name, _) in enumerate(node.residents[:14]):
        id_spelling = [id_number, id_number.lower(), _wide(id_number), f" {id_number}\u3000"][i % 4]
        rows.append((id_spelling, _spaced(name, spacings[i % len(spacings)]), "same"))
    for dot in [".", "。", "．", "・", "･", "•", "‧", " · ", "\u3000.\u3000", "..", "·"]:
        rows.append((_wide(AYGUL), f"阿依古丽{dot}买买提", "same"))
    rows += [
        (AYGUL, "阿依古丽·买买提。", "same"),
        (NANA, "欧阳娜娜", "same"),
        (NANA, "欧阳\u3000娜娜", "same"),
        (NANA, "欧 阳 娜 娜", "same"),
        (DILRABA, "迪丽热巴·迪力木拉提", "same"),
        (DILRABA, "迪丽热巴 ・ 迪力木拉提", "same"),
        (HONG_KONG, "陈\u3000大文", "same"),
        (TAIWAN, "林志明", "same"),
        (_wide(TAIWAN[:17] + "x"), "林 志 明", "same"),
        (_id("51052119850315003"), "王芳", "same"),  # the 18-digit form of the register's 15
        (FIRST_GENERATION, "王 芳", "same"),
        (ZHAO, "赵敏", "same"),
        (ZHAO.lower(), "赵\u2060敏", "same"),
        (node.residents[20][0], "不是此人", "other"),
        (_id("99010219900101001"), "张三", f"error:{FOREIGNER}"),
        (_id("00000019900101001"), "张三", f"error:{UNKNOWN_PROVINCE}"),
        ("000000000000000000", "张三", f"error:{UNKNOWN_PROVINCE}"),
        (_id("16010019900101001"), "张三", f"error:{UNKNOWN_PROVINCE}"),
        ("990102900101001", "张三", f"error:{UNKNOWN_PROVINCE}"),
        (AYGUL[:17] + ("1" if AYGUL[17] == "0" else "0"), "阿依古丽·买买提", "error:check"),
        (AYGUL[:16], "阿依古丽·买买提", "error:must have 18 characters"),
    ]
    return rows


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    """The integration node, its register holding some people as the provider's clerks typed."""
    first = start(tmp_path_factory.mktemp("clerks-node"))
    first.started.stop(grace=0)
    add_residents(first.directory / "source.db", REGISTER)
    config = load_config(first.config_path)
    resource = build_catalog(config)["residents"]
    report = load_resource(resource, config, NodeKeys.load(config.keys.dir))
    assert report.invalid_rows == 0
    started = start_node(open_node(config), listen="127.0.0.1:0", metrics_listen="127.0.0.1:0")
    running = dataclasses.replace(first, started=started)
    yield running
    started.stop(grace=1.0)


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> None:
    # Saved by a spreadsheet: a byte order mark, CRLF line ends.
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id_number", "name", "expected"])
        writer.writerows(rows)


@pytest.mark.parametrize("mode", ["hashed", "blinded"])
@pytest.mark.parametrize("key", ["id_number", "id_number+name"])
def test_the_same_person_however_spelled_is_never_not_matched(
    node: NodeUnderTest, tmp_path: Path, mode: str, key: str
) -> None:
    rows = _requester_rows(node)
    path = tmp_path / "clerks.csv"
    _write_csv(path, rows)
    table = read_csv(path, required_columns=["id_number", "name", "expected"])
    fields = ["id_number"] if key == "id_number" else ["id_number", "name"]
    with node.client() as client:
        result = client.compare(
            "residents",
            table.records(fields),
            key=key,
            mode=mode,  # type: ignore[arg-type]
            purpose=PURPOSE,
        )
    assert len(result) == len(rows)
    not_matched = [
        (i, rows[i][:2]) for i, (_, _, expected) in enumerate(rows)
        if expected == "same" and result[i].status != "matched"
    ]  # fmt: skip
    assert not not_matched
    for i, (_, _, expected) in enumerate(rows):
        outcome = result[i]
        if expected == "other":
            assert outcome.status == ("matched" if key == "id_number" else "not_matched")
        elif expected.startswith("error:"):
            assert outcome.status == "error", rows[i]
            assert outcome.field == "id_number"
            assert outcome.reason is not None and outcome.reason.startswith(expected[6:])
    assert result.error_count == sum(e.startswith("error:") for _, _, e in rows)
