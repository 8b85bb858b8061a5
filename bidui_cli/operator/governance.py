"""What the operator's governance commands share: the node's configuration and audit log, who
acts and when, and the library's refusals as one line.

``bidui provider pki sign | list | revoke`` (``enrolment.py``) and ``bidui provider applications``
and ``grants`` (``decisions.py``) each open a :class:`Governance` for one action. The library
records every action in the audit log in the same transaction as the change it makes
(``provider_node.identity.enrolment``, ``provider_node.governance.sharing``); the operator the
record names is the
node's department (``[node] department``) unless ``--operator`` names someone.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bidui_cli import terminal
from bidui_cli.errors import fail
from bidui_cli.terminal import required_text
from provider_node.audit.log import AuditLog, AuditUnavailableError
from provider_node.audit.operator import open_audit
from provider_node.config import ConfigError, NodeConfig, load_config
from provider_node.core.errors import NodeError
from provider_node.core.workdays import china_date

__all__ = ["Governance", "governance", "operator_option", "reason_option"]

_Command = TypeVar("_Command", bound=Callable[..., Any])


def operator_option(command: _Command) -> _Command:
    """``--operator NAME``: who acts, as the audit record names them."""
    return click.option(
        "--operator",
        metavar="NAME",
        default=None,
        help="Who acts, as named in the audit record (default: the node's [node] department).",
    )(command)


def reason_option(who_reads: str) -> Callable[[_Command], _Command]:
    """``--reason TEXT``, required and not blank; ``who_reads`` it besides the audit log."""
    return click.option(
        "--reason",
        callback=required_text,
        help=f"Why (required): {who_reads}; the audit log keeps it.",
    )


@dataclass(frozen=True)
class Governance:
    """One operator's action on one node: its configuration, audit log, who acts, and when."""

    config: NodeConfig
    audit: AuditLog
    operator: str
    now: _dt.datetime

    @property
    def today(self) -> _dt.date:
        """The calendar date in China, in which the regulation's deadlines are dates."""
        return china_date(self.now)

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.audit.sessions


@contextmanager
def governance(config_path: Path, operator: str | None = None) -> Iterator[Governance]:
    """Open the node's audit log for one action; the library's refusals end the command.

    An unknown id, a decision already taken, an approval wider than the application, a deadline
    outside the working-day calendar, an audit log that cannot be written: one line, exit 2.
    """
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        fail("\n".join(exc.problems))
    name = (config.node.department if operator is None else operator).strip()
    if not name:
        fail("--operator must name who acts: the audit record keeps it")
    try:
        audit = open_audit(config)
    except AuditUnavailableError as exc:
        fail(exc.detail)
    try:
        yield Governance(config, audit, name, terminal.clock())
    except AuditUnavailableError as exc:
        fail(f"the audit log refused the record, so nothing was changed: {exc.detail}")
    except NodeError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:  # reading the register, applications or grants
        fail(f"cannot read the node's database: {(str(exc).splitlines() or ['?'])[0]}")
    finally:
        engine = audit.sessions.kw.get("bind")
        if isinstance(engine, Engine):
            engine.dispose()
