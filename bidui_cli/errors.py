"""How a command reports a mistake: one line on stderr, exit code 2, no traceback.

``UserError`` is the commands' own; ``OneLineUsage``, the ``bidui`` group's class, turns click's
usage errors (a missing option, a value of the wrong type, an unknown option) into the same one
line, naming the help to read, instead of a usage dump.
"""

from __future__ import annotations

from typing import Any, NoReturn

import click

__all__ = ["OneLineUsage", "UserError", "fail"]


class UserError(click.ClickException):
    """One line on stderr, exit code 2."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    raise UserError(message)


class OneLineUsage(click.Group):
    """A group whose subcommands, at any depth, report a usage mistake as one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            where = (exc.ctx or ctx).command_path
            message = exc.format_message().rstrip(".")
            raise UserError(f"{message}: see `{where} --help`") from None
