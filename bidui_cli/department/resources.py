"""``bidui resources``: the provider's catalog as a requesting department sees it (articles 7-10):
what each resource holds, how it is shared, what it answers, its usage conditions, and how fresh
its data is. Changes nothing.

    bidui resources --target node:50051 …            one line per resource
    bidui resources show residents --target …        one resource, whole
    bidui resources --json --target …                the same facts for a script
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

import click

from bidui.v1 import catalog_pb2
from bidui_cli import terminal
from bidui_cli.department.connection import NodeAddress, node_options, reported
from client_sdk.comparison.catalog import answers_from_wire, mode_from_wire
from comparator.periods import duration_seconds

__all__ = ["resources"]

_TIMEOUT = 30.0
_SHARING = {
    catalog_pb2.SHARING_TYPE_UNCONDITIONAL: "unconditional",
    catalog_pb2.SHARING_TYPE_CONDITIONAL: "conditional",
    catalog_pb2.SHARING_TYPE_NOT_SHARED: "not_shared",
}
_SHARING_SHOWN = {
    "unconditional": "unconditional: any department may compare",
    "conditional": "conditional: compared under a grant (apply with `bidui apply`)",
    "not_shared": "not shared: catalogued, never compared (article 5)",
}
_CATEGORY = {
    catalog_pb2.CATEGORY_BASIC: "basic",
    catalog_pb2.CATEGORY_THEMATIC: "thematic",
    catalog_pb2.CATEGORY_DEPARTMENTAL: "departmental",
}


def _period_seconds(period: str) -> float | None:
    """The update period in seconds; None where the node states none this reads."""
    try:
        return duration_seconds(period)
    except ValueError:
        return None


def _facts(resource: catalog_pb2.Resource, now: _dt.datetime) -> dict[str, Any]:
    refreshed = (
        resource.last_refresh.ToDatetime(_dt.UTC) if resource.HasField("last_refresh") else None
    )
    period = _period_seconds(resource.update_period)
    stale = (
        refreshed is not None and period is not None and (now - refreshed).total_seconds() > period
    )
    return {
        "id": resource.id,
        "name": resource.name,
        "owner": resource.owner_department,
        "category": _CATEGORY.get(resource.category, "unspecified"),
        "sharing": _SHARING.get(resource.sharing_type, "unspecified"),
        "modes": [str(m) for m in map(mode_from_wire, resource.modes) if m is not None],
        "answers": list(answers_from_wire(resource.answers)),
        "keys": {k.name: list(k.fields) for k in resource.comparison_keys},
        "verifiable": {k.name: list(k.verifiable_fields) for k in resource.comparison_keys},
        "fields": {f.name: f.type for f in resource.fields},
        "usage_conditions": resource.usage_conditions,
        "update_period": resource.update_period,
        "last_refresh": refreshed.isoformat() if refreshed is not None else None,
        "stale": stale,
        "key_version": resource.key_version,
    }


def _fresh(facts: dict[str, Any]) -> str:
    if facts["last_refresh"] is None:
        return "never loaded"
    refreshed = _dt.datetime.fromisoformat(facts["last_refresh"])
    shown = terminal.moment(refreshed)
    return f"{shown} (STALE: older than its update period)" if facts["stale"] else shown


@click.command("resources")
@node_options
@click.argument("words", nargs=-1, metavar="[show ID]")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of lines.")
def resources(node: NodeAddress, words: tuple[str, ...], as_json: bool) -> None:
    """The provider's resources: sharing, modes, answers, usage conditions, freshness.

    Changes nothing. `bidui resources show ID` gives one whole, with its fields, comparison keys,
    what can be verified and its usage conditions; a resource shared on conditions is compared
    under a grant (`bidui apply`). A resource older than its update period is marked STALE: its
    answers may miss records added since.
    """
    if words and (words[0] != "show" or len(words) != 2):
        raise click.UsageError("give nothing (every resource) or `show ID` (one resource)")
    if words:
        _show(node, words[1], as_json)
        return
    with reported(), node.client(timeout=_TIMEOUT) as client:
        listed = client.list_resources()
    now = terminal.clock()
    found = [_facts(resource, now) for resource in listed]
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    if not found:
        click.echo("the node lists no resources")
        return
    terminal.table(
        ("id", "sharing", "modes", "answers", "updated", "name"),
        [
            (
                f["id"],
                f["sharing"],
                ",".join(f["modes"]) or "-",
                ",".join(f["answers"]),
                f"{f['update_period']}{' STALE' if f['stale'] else ''}",
                f["name"],
            )
            for f in found
        ],
    )


def _show(node: NodeAddress, resource_id: str, as_json: bool) -> None:
    """One resource whole."""
    with reported(), node.client(timeout=_TIMEOUT) as client:
        described = client.describe(resource_id)
    facts = _facts(described, terminal.clock())
    if as_json:
        click.echo(json.dumps(facts, ensure_ascii=False, indent=2))
        return
    lines = [
        ("resource", f"{facts['id']}  {facts['name']}"),
        ("owner", facts["owner"]),
        ("category", facts["category"]),
        ("sharing", _SHARING_SHOWN.get(facts["sharing"], facts["sharing"])),
        ("modes", ", ".join(facts["modes"]) or "-"),
        ("answers", ", ".join(facts["answers"])),
        ("update period", facts["update_period"]),
        ("last refresh", _fresh(facts)),
        ("usage conditions", facts["usage_conditions"] or "-"),
    ]
    lines += [("field", f"{name} ({kind})") for name, kind in facts["fields"].items()]
    for key, members in facts["keys"].items():
        verifiable = facts["verifiable"].get(key) or []
        also = f"; verifies {', '.join(verifiable)}" if verifiable else ""
        lines.append(("key", f"{key} = {' + '.join(members)}{also}"))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        click.echo(f"{label.ljust(width)}  {value}")
