"""``bidui provider pki rotate-ca`` and ``bidui provider keys rotate``: replacing what init keeps.

Each says what it invalidates and does nothing without ``--confirm`` (exit code 2, the list
printed). With it: the audit log is opened first (no unaudited rotation), the files are replaced
with backups kept beside them, the action is audited, and the next steps are printed.
Other ``pki`` commands (signing, revoking) may join the ``pki`` group from their own module
with ``pki.add_command``; ``main.py`` adds both groups to ``bidui provider``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from bidui_cli.errors import fail
from bidui_cli.options import config_option
from provider_node.audit.log import AuditUnavailableError
from provider_node.audit.operator import open_audit, record_governance
from provider_node.config import ConfigError, NodeConfig, load_config
from provider_node.core.vocabulary import Action
from provider_node.setup.rotation import CaRotation, KeyRotation, Rotation, RotationError

__all__ = ["keys", "pki"]

_confirm_option = click.option(
    "--confirm",
    is_flag=True,
    help="Do it, having read what it invalidates (without this flag: only say so).",
)


_Plan = TypeVar("_Plan", bound=Rotation)


def _plan(config_path: Path, kind: Callable[[NodeConfig], _Plan]) -> tuple[NodeConfig, _Plan]:
    """The configuration and the checked plan; any problem ends the command, nothing changed."""
    try:
        config = load_config(config_path)
        return config, kind(config)
    except ConfigError as exc:
        fail("\n".join(exc.problems))
    except (RotationError, OSError) as exc:
        fail(str(exc))


def _refuse_unless_confirmed(
    plan: Rotation, config: NodeConfig, confirm: bool, command: str
) -> None:
    if confirm:
        return
    click.echo(f"`{command}` would invalidate:", err=True)
    for line in plan.invalidates:
        click.echo(f"  - {line}", err=True)
    fail(f"nothing was changed; to do it: {command} --config {config.path} --confirm")


def _carry_out(plan: Rotation, config: NodeConfig, action: Action) -> None:
    try:
        audit = open_audit(config)
    except AuditUnavailableError as exc:
        fail(f"{exc.detail}; nothing was changed")
    try:
        done = plan.carry_out()
    except RotationError as exc:
        fail(f"{exc}; nothing was changed")
    except (OSError, ValueError) as exc:
        fail(f"the rotation stopped part way ({exc}): restore from the *.replaced-* files")
    for title, pairs in (("replaced", done.replaced), ("retired", done.retired)):
        for path, backup in pairs:
            click.echo(f"  {title:<8} {path}  (the old one kept as {backup.name})")
    try:
        record_governance(audit, config, action, done.audit_reason)
    except AuditUnavailableError as exc:
        fail(f"rotated, but the audit log refused the record of it: {exc.detail}")


@click.group()
def pki() -> None:
    """Departments' client certificates (sign their requests, list, revoke) and the node's CA."""


@pki.command("rotate-ca")
@config_option()
@_confirm_option
def rotate_ca(config_path: Path, confirm: bool) -> None:
    """Replace the CA and the server certificate, e.g. after the CA key leaked.

    Every client certificate the old CA issued stops working: each requesting department needs a
    new one, and the new CA certificate. Without --confirm, only lists this (exit code 2).
    The old files stay beside the new ones as *.replaced-<UTC time>."""
    config, plan = _plan(config_path, CaRotation)
    _refuse_unless_confirmed(plan, config, confirm, "bidui provider pki rotate-ca")
    _carry_out(plan, config, Action.CA_ROTATION)
    clients = " ".join(f"--client {d}" for d in plan.departments) or "--client <department>"
    click.echo("Next:")
    click.echo("  1. issue new client certificates: sign each department's request again")
    click.echo(f"     bidui provider pki sign <department>.csr --config {config_path}")
    click.echo(
        f"     and the development ones: bidui provider init --dir {config.path.parent} {clients}"
    )
    click.echo(f"  2. give each department {plan.ca_pair[0]} and its new certificate")
    click.echo(f"  3. restart: bidui provider serve --config {config_path}")


@click.group()
def keys() -> None:
    """The node's master secrets (keys/oprf_seed, keys/hmac_master)."""


@keys.command("rotate")
@config_option()
@_confirm_option
def rotate_keys(config_path: Path, confirm: bool) -> None:
    """Replace both master secrets, e.g. after they leaked; raise every resource's key_version.

    For a routine rotation of one resource's keys, raise its key_version in node.toml and run
    `bidui provider load` instead: the master secrets stay. Without --confirm, only lists what
    this invalidates (exit code 2). The old files stay beside the new ones as
    *.replaced-<UTC time>."""
    config, plan = _plan(config_path, KeyRotation)
    _refuse_unless_confirmed(plan, config, confirm, "bidui provider keys rotate")
    _carry_out(plan, config, Action.KEY_ROTATION)
    click.echo("Next:")
    click.echo(f"  1. rebuild the indexes: bidui provider load --config {config_path}")
    click.echo(f"  2. restart: bidui provider serve --config {config_path}")
