"""How an operator's command reports a mistake: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

from typing import NoReturn

import click

__all__ = ["UserError", "fail"]


class UserError(click.ClickException):
    """One line on stderr, exit code 2."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    raise UserError(message)
