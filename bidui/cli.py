"""The ``bidui`` command: one entry point for every role.

- requesting departments: ``bidui compare``
- provider node operators: ``bidui provider init | load | serve``
- compliance officers: ``bidui audit verify | export``
- newcomers: ``bidui demo``
"""

from __future__ import annotations

import logging

import click

from bidui import __version__
from bidui.demo import demo
from client_sdk.cli import compare
from provider_node.audit_cli import audit
from provider_node.cli import provider
from provider_node.serve_cli import serve

provider.add_command(serve)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bidui")
@click.option(
    "-v", "--verbose", is_flag=True, help="Log progress to stderr (never secrets or values)."
)
def main(verbose: bool) -> None:
    """bidui (比對): compare records with another department's data without the data ever
    leaving the provider's premises. Only match / no-match leaves the provider's node, and every
    comparison is audited before it is answered.

    \b
    Start here:   bidui demo
    Requesters:   bidui compare --help
    Operators:    bidui provider --help
    Compliance:   bidui audit --help
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


main.add_command(compare)
main.add_command(provider)
main.add_command(audit)
main.add_command(demo)
