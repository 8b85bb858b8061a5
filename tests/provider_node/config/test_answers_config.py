"""Answers as permissions and verification as configuration: a resource's ``answers`` and
``verify`` table, the catalog entry, the verification indexes the loader builds, and the answers
of applications and grants (applied for, narrowed, checked before each comparison)."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bidui.v1 import catalog_pb2
from provider_node.config import ConfigError, load_config
from provider_node.core import errors
from provider_node.governance.grant_lookup import find_grant
from provider_node.governance.grants import approve, submit_application
from provider_node.resources.catalog import build_catalog
from provider_node.resources.keys import NodeKeys
from provider_node.resources.loader import index_path, load_indexes, load_resource
from provider_node.store.models import Grant
from provider_node.transport.catalog_proto import resource_to_proto
from tests.provider_node.governance.test_grants import (
    DECIDED,
    DEPARTMENT,
    OFFICER,
    RESOURCE,
    application,
)

NODE = """
[node]
department = "psb"
[[resources]]
id = "people"
name = "People"
category = "basic"
sharing_type = "unconditional"
modes = ["hashed", "blinded"]
fields = { id_number = "cn_resident_id", name = "person_name", phone = "phone" }
keys = { "id_number" = ["id_number"] }
source = { url = "sqlite:///source.db", query = "SELECT id_number, name, phone FROM people" }
"""
VERIFYING = 'answers = ["match", "verify", "count"]\nverify = { "id_number" = ["name", "phone"] }\n'


def _config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(NODE.replace("source =", extra + "source ="), encoding="utf-8")
    return path


def test_answers_default_to_match_bits_only(tmp_path: Path) -> None:
    resource = load_config(_config(tmp_path, "")).resources[0]
    assert tuple(resource.answers) == ("match",) and dict(resource.verify) == {}


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ('answers = ["verify"]\n', "only together with a verify table"),
        ('verify = { "id_number" = ["name"] }\n', "only together with a verify table"),
        ('answers = ["count", "count"]\n', "answer 'count' is listed twice"),
        ('answers = ["statistics"]\n', "unknown answer 'statistics'"),
        ('answers = ["verify"]\nverify = { "name" = ["phone"] }\n', "is not a comparison key"),
        ('answers = ["verify"]\nverify = { "id_number" = ["id_number"] }\n', "part of the key"),
        ('answers = ["verify"]\nverify = { "id_number" = ["email"] }\n', "undeclared field"),
        ('answers = ["verify"]\nverify = { "id_number" = [] }\n', "non-empty list"),
    ],
)
def test_answers_and_verify_are_checked(tmp_path: Path, extra: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_config(_config(tmp_path, extra))


def test_the_catalog_entry_publishes_answers_and_verifiable_fields(tmp_path: Path) -> None:
    resource = build_catalog(load_config(_config(tmp_path, VERIFYING)))["people"]
    entry = resource_to_proto(resource, oprf_public_key=None, last_refresh=None)
    assert list(entry.answers) == [
        catalog_pb2.ANSWER_MATCH, catalog_pb2.ANSWER_VERIFY, catalog_pb2.ANSWER_COUNT,
    ]  # fmt: skip
    assert list(entry.comparison_keys[0].verifiable_fields) == ["name", "phone"]
    assert list(resource.index_keys) == [
        "id_number", "verify:id_number:name", "verify:id_number:phone",
    ]  # fmt: skip


def test_the_loader_builds_and_opens_every_verification_index(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, VERIFYING))
    with sqlite3.connect(tmp_path / "source.db") as db:
        db.execute("CREATE TABLE people (id_number TEXT, name TEXT, phone TEXT)")
        db.execute("INSERT INTO people VALUES ('11010519491231002X', '张三', '13800000000')")
        db.execute("INSERT INTO people VALUES ('510502199611099144', '李四', NULL)")
    keys = NodeKeys.generate(config.keys.dir)
    resource = build_catalog(config)["people"]
    report = load_resource(resource, config, keys)
    built = {(r.key, r.mode): r.records for r in report.indexes}
    assert built[("verify:id_number:name", "blinded")] == 2
    assert built[("verify:id_number:phone", "hashed")] == 1  # an empty phone has no entry
    assert report.invalid["verify:id_number:phone"].count == 1
    path = index_path(config, "people", "verify:id_number:phone", "hashed")
    assert path.name == "id_number.verify.phone.hashed.idx" and path.exists()
    assert len(load_indexes(resource, config, keys)) == 6


# ---- applications and grants ------------------------------------------------------------------


def _grant(sessions: sessionmaker[Session], applied: Any, **narrowing: Any) -> str:
    with sessions.begin() as session:
        app = application(session, answers=applied)
        return approve(session, app.id, OFFICER, DECIDED, **narrowing).id


def test_applications_and_grants_name_their_answers(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        assert application(session).answers == ["match"]
        assert application(session, answers=["verify", "count", "verify"]).answers == [
            "count", "verify",
        ]  # fmt: skip
        with pytest.raises(errors.InvalidRequestError, match="answers must be one or more"):
            application(session, answers=["everything"])
    narrowed = _grant(sessions, ["count", "verify"], answers=["verify"])
    with sessions() as session:
        grant = session.get(Grant, narrowed)
        assert grant is not None and grant.answers == ["verify"]
    with sessions.begin() as session, pytest.raises(errors.ApprovalTooWideError):
        app = application(session, answers=["verify"])
        approve(session, app.id, OFFICER, DECIDED, answers=["verify", "count"])


def test_find_grant_checks_the_answer(sessions: sessionmaker[Session]) -> None:
    match_only = _grant(sessions, None)
    today = date(2025, 10, 10)
    with sessions() as session:
        found = find_grant(session, DEPARTMENT, RESOURCE, "id_number", "hashed", today)
        assert found.id == match_only  # no answer named: any grant (the hashed-mode key)
        assert find_grant(session, DEPARTMENT, RESOURCE, "id_number", "hashed", today, "match")
        with pytest.raises(errors.GrantRefusal) as refused:
            find_grant(session, DEPARTMENT, RESOURCE, "id_number", "hashed", today, "verify")
    assert refused.value.why is errors.GrantRefusalReason.ANSWER_NOT_GRANTED
    assert refused.value.reason == "answer_not_granted" and "not verify" in str(refused.value)
    verifying = _grant(sessions, ["verify"])
    with sessions() as session:
        found = find_grant(session, DEPARTMENT, RESOURCE, "id_number", "hashed", today, "verify")
    assert found.id == verifying


def test_submit_application_keeps_match_only_by_default(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        app = submit_application(
            session, DEPARTMENT, RESOURCE, ["id_number"], ["hashed"], "duty", 10,
            date(2026, 9, 30), DECIDED,
        )  # fmt: skip
        assert app.answers == ["match"]
