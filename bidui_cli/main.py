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

from bidui_cli.compliance.audit import audit
from bidui_cli.demo import demo
from bidui_cli.department.access import apply, department_applications
from bidui_cli.department.access import keys as department_keys
from bidui_cli.department.compare import compare
from bidui_cli.department.discrepancies import discrepancy
from bidui_cli.department.verify import verify
from bidui_cli.errors import OneLineUsage
from bidui_cli.operator.calendar import calendar
from bidui_cli.operator.decisions import applications, grants
from bidui_cli.operator.discrepancies import discrepancies
from bidui_cli.operator.enrolment import list_certificates, revoke, sign
from bidui_cli.operator.provider import provider
from bidui_cli.operator.rotation import keys, pki
from bidui_cli.operator.serve import serve

for command in (sign, list_certificates, revoke):
    pki.add_command(command)
for command in (serve, pki, keys, applications, grants, discrepancies, calendar):
    provider.add_command(command)


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
main.add_command(provider)
main.add_command(audit)
main.add_command(demo)
