"""The ``--config`` option every node command takes: one spelling, one environment variable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["config_option"]

_Command = TypeVar("_Command", bound=Callable[..., Any])


def config_option(
    help: str = "The node's configuration file (node.toml, made by `bidui provider init`).",
    *,
    name: str = "config_path",
) -> Callable[[_Command], _Command]:
    """``--config PATH`` (or ``BIDUI_CONFIG``), required, passed to the command as ``name``."""
    return click.option(
        "--config",
        name,
        required=True,
        envvar="BIDUI_CONFIG",
        type=click.Path(path_type=Path, dir_okay=False),
        help=f"{help} [env: BIDUI_CONFIG]",
    )
