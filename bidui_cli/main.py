"""The ``bidui`` command: one entry point for every role.

- requesting departments: ``bidui keys request``, ``bidui apply``, ``bidui applications``,
  ``bidui compare``, ``bidui discrepancy file | show | list``
- provider node operators: ``bidui provider init | load | serve``,
  ``bidui provider pki sign | list | revoke | rotate-ca``, ``bidui provider keys rotate``,
  ``bidui provider applications list | show | approve | refuse``, ``bidui provider grants``,
  ``bidui provider discrepancies list | show | confirm | correct | reject``,
  ``bidui provider calendar``
- compliance officers: ``bidui audit verify | export | report``
- newcomers: ``bidui demo``
"""

from __future__ import annotations

import logging

import click

from bidui_cli.department.access import apply, department_applications
from bidui_cli.department.access import keys as department_keys
from bidui_cli.department.compare import compare
from bidui_cli.department.discrepancies import discrepancy
from bidui_cli.department.resources import resources
from bidui_cli.department.verify import verify
from bidui_cli.errors import OneLineUsage, fail

#: What the provider's node brings beyond a requester's install (``requester/pyproject.toml``):
#: its commands are offered only where these can be imported.
NODE_STACK = frozenset(
    {
        "provider_node",
        "sqlalchemy",
        "alembic",
        "pydantic",
        "prometheus_client",
        "chinese_calendar",
        "grpc_health",
        "grpc_reflection",
    }
)
_NODE_ROOMS = ("bidui_cli.operator", "bidui_cli.compliance")


def node_commands() -> list[click.Command]:
    """``provider``, ``audit`` and ``demo``; where the node is not installed, each says so and how
    to install it instead of failing with an import error."""
    try:
        from bidui_cli.compliance.audit import audit
        from bidui_cli.operator.calendar import calendar
        from bidui_cli.operator.decisions import applications, grants
        from bidui_cli.operator.demo import demo
        from bidui_cli.operator.discrepancies import discrepancies
        from bidui_cli.operator.enrolment import list_certificates, revoke, sign
        from bidui_cli.operator.provider import provider
        from bidui_cli.operator.rotation import keys, pki
        from bidui_cli.operator.serve import serve
    except ModuleNotFoundError as missing:
        name = missing.name or ""
        if name.split(".")[0] not in NODE_STACK and not name.startswith(_NODE_ROOMS):
            raise
        return [
            _not_installed("provider", "The node operator's commands.", name),
            _not_installed("audit", "The compliance officer's commands.", name),
            _not_installed("demo", "The whole product on one machine.", name),
        ]
    for command in (sign, list_certificates, revoke):
        pki.add_command(command)
    for command in (serve, pki, keys, applications, grants, discrepancies, calendar):
        provider.add_command(command)
    return [provider, audit, demo]


def _not_installed(name: str, what: str, missing: str) -> click.Command:
    def explain() -> None:
        fail(
            f"`bidui {name}` runs the provider's node, which this installation does not hold "
            f"({missing} is missing): a requesting department's install has the SDK and the "
            "department's commands only. Install the whole package where the node runs: "
            "pip install bidui (from a checkout: pip install .)"
        )

    return click.Command(
        name,
        callback=explain,
        help=f"{what} Not installed here: needs the whole package (pip install bidui).",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )


@click.group(
    name="bidui", cls=OneLineUsage, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="bidui", prog_name="bidui")  # the installed version
@click.option(
    "-v", "--verbose", is_flag=True, help="Log progress to stderr (never secrets or values)."
)
def main(verbose: bool) -> None:
    """bidui (比對): compare records with another department's data without the data ever
    leaving the provider's premises. Only match / no-match leaves the provider's node, and every
    comparison is audited before it is answered.

    \b
    Start here:   bidui demo
    Requesters:   bidui keys request --help, bidui apply --help, bidui compare --help
    Operators:    bidui provider --help
    Compliance:   bidui audit --help
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


main.add_command(compare)
main.add_command(verify)
main.add_command(department_keys)
main.add_command(apply)
main.add_command(department_applications)
main.add_command(discrepancy)
main.add_command(resources)
for node_command in node_commands():
    main.add_command(node_command)
