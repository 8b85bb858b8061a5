"""How a requesting department's commands reach a provider's node, and how their failures end.

``bidui compare``, ``bidui apply`` and ``bidui applications`` take the same five options, each
with one environment variable (``node_options``), gathered into a :class:`NodeAddress`. Their
failures end the same way (``reported``): one line on stderr; exit code 2 for a mistake the user
can fix (a file, a certificate, a refusal by the node), 1 for a failure of the service, 130 when
interrupted; never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from client_sdk.client import ComparisonClient
from client_sdk.connection.credentials import Credentials
from client_sdk.errors import BiduiError

__all__ = ["NodeAddress", "node_options", "reported"]

_Result = TypeVar("_Result")


@dataclass(frozen=True)
class NodeAddress:
    """The provider's node and the files this department connects to it with."""

    target: str
    ca_cert: str
    cert: str
    key_file: str
    server_name: str | None = None

    def credentials(self) -> Credentials:
        """The CA certificate, certificate and key, read and checked (CredentialsError)."""
        return Credentials.from_files(self.ca_cert, self.cert, self.key_file)

    def client(self, *, timeout: float, **options: Any) -> ComparisonClient:
        """A client of the node (close it, or use it in a ``with`` block)."""
        return ComparisonClient(
            self.target,
            self.credentials(),
            timeout=timeout,
            server_name=self.server_name,
            **options,
        )


_OPTIONS = (
    click.option(
        "--target",
        envvar="BIDUI_TARGET",
        required=True,
        help="The provider node, HOST:PORT. [env: BIDUI_TARGET]",
    ),
    click.option(
        "--ca-cert",
        envvar="BIDUI_CA_CERT",
        required=True,
        type=click.Path(dir_okay=False),
        help="CA certificate (PEM) the node's certificate must chain to. [env: BIDUI_CA_CERT]",
    ),
    click.option(
        "--cert",
        envvar="BIDUI_CLIENT_CERT",
        required=True,
        type=click.Path(dir_okay=False),
        help="Your department's client certificate (PEM). [env: BIDUI_CLIENT_CERT]",
    ),
    click.option(
        "--key-file",
        envvar="BIDUI_CLIENT_KEY",
        required=True,
        type=click.Path(dir_okay=False),
        help="The client certificate's private key (unencrypted PEM). [env: BIDUI_CLIENT_KEY]",
    ),
    click.option(
        "--server-name",
        envvar="BIDUI_SERVER_NAME",
        default=None,
        help="Expect this name in the node's certificate instead of the target's host. "
        "[env: BIDUI_SERVER_NAME]",
    ),
)


def node_options(command: Callable[..., _Result]) -> Callable[..., _Result]:
    """Add ``--target --ca-cert --cert --key-file --server-name``; the command gets ``node``."""

    @functools.wraps(command)
    def run(
        *args: Any,
        target: str,
        ca_cert: str,
        cert: str,
        key_file: str,
        server_name: str | None,
        **kwargs: Any,
    ) -> _Result:
        node = NodeAddress(target, ca_cert, cert, key_file, server_name)
        return command(*args, node=node, **kwargs)

    for option in reversed(_OPTIONS):
        run = option(run)
    return run


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


@contextmanager
def reported() -> Iterator[None]:
    """End the command on any failure inside: one line, the exit code its class calls for."""
    try:
        yield
    except click.ClickException:
        raise  # already one line of its own (UserError)
    except BiduiError as exc:
        fail(str(exc), 2 if exc.user_error else 1)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:  # never a traceback: one line naming what broke
        fail(f"unexpected failure: {type(exc).__name__}: {exc}", 1)
