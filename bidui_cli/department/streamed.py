"""What ``bidui compare`` and ``bidui verify`` share: a CSV of any size, answered block by block.

The file is checked whole first (a malformed row is reported by line before anything is sent),
then read again ``BLOCK_ROWS`` rows at a time; each block's answered rows are on disk in
``OUTPUT.partial`` before the next block is sent, and the file becomes ``OUTPUT`` once every row
is answered. Interrupted, the partial file keeps what was answered and ``--resume`` goes on.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import click

from bidui_cli.department.connection import node_options
from client_sdk.files import csv_stream
from client_sdk.files.csv_io import CsvTable
from client_sdk.files.csv_stream import CsvBlock, PartialOutput

__all__ = ["BLOCK_ROWS", "Tally", "check_input", "run_options", "stream_answers"]

_ERRORS_SHOWN = 5

# Rows read and answered at a time (each block several requests of --batch-size): memory stays
# bounded whatever the file's size, and a block's answers are on disk before the next is sent.
BLOCK_ROWS = 50_000

_F = TypeVar("_F", bound=Callable[..., Any])


def run_options(what: str, *, min_batch: int, batch_help: str) -> Callable[[_F], _F]:
    """The options a streamed run of ``what`` ("comparison", "verification") takes after its
    own: purpose, the node, timeout, batch size, request id, grant, --resume and --quiet."""
    options: list[Callable[[Any], Any]] = [
        click.option(
            "--purpose",
            required=True,
            help=f"The duty this {what} serves (required; recorded in the node's audit log).",
        ),
        node_options,
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=60.0,
            show_default=True,
            help="Seconds allowed for each request of at most --batch-size, retries included.",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=min_batch),
            default=10_000,
            show_default=True,
            help=batch_help,
        ),
        click.option(
            "--request-id", default=None, help="Id grouping the requests in the audit log."
        ),
        click.option(
            "--grant",
            "grant_id",
            metavar="GRANT_ID",
            default=None,
            help=f"The grant a conditional resource's {what} runs under (`bidui applications`); "
            "default: the node finds the one that covers the key and mode today.",
        ),
        click.option(
            "--resume",
            is_flag=True,
            help="Continue an interrupted run: the rows already answered in OUTPUT.partial are "
            "kept and the run goes on after them.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    ]

    def decorate(command: _F) -> _F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@dataclass
class Tally:
    """What a run's summary says, gathered block by block (never the rows themselves)."""

    request_id: str
    rows: int = 0
    resumed_after: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    shown: list[str] = field(default_factory=list)
    comparison_ids: list[str] = field(default_factory=list)

    def add(self, block: CsvBlock, result: Answered, **counts: int) -> None:
        """A block's ``result``: its rows, ``counts`` per outcome, the first errors by line."""
        self.rows += len(result)
        self.counts.update(counts)
        for record in result.errors[: max(0, _ERRORS_SHOWN - len(self.shown))]:
            self.shown.append(f"  line {block.lines[record.index]}: {record.message}")
        self.comparison_ids.extend(result.comparison_ids)

    def summary(self, counts_line: str, output_path: str) -> None:
        if self.resumed_after:
            click.echo(f"resumed after the {self.resumed_after:,} rows answered before")
        click.echo(counts_line)
        for line in self.shown:
            click.echo(line)
        hidden = self.counts["error"] - len(self.shown)
        if hidden > 0:
            click.echo(f"  ... and {hidden} more (see the bidui_error column)")
        click.echo(f"output: {output_path}")
        click.echo(f"request id: {self.request_id} ({len(self.comparison_ids)} request(s))")


class Answered(Protocol):
    """What ``Tally`` reads of a block's result (comparison or verification)."""

    @property
    def errors(self) -> Sequence[Any]: ...

    @property
    def comparison_ids(self) -> Sequence[str]: ...

    def __len__(self) -> int: ...


def check_input(input_path: str, quiet: bool) -> tuple[CsvTable, int]:
    """The file's header and row count, every row checked (by line) before anything is sent."""
    with _progress(quiet, None, "checking") as checked:
        return csv_stream.check(input_path, progress=checked)


def stream_answers(
    input_path: str,
    output: PartialOutput,
    total: int,
    *,
    quiet: bool,
    label: str,
    batch_size: int,
    answer: Callable[[CsvBlock], Sequence[Sequence[str]]],
) -> None:
    """Answer the rows after ``output.done``, a block at a time, writing each block's rows."""
    try:
        with _progress(quiet, total, label, start=output.done) as answered:
            size = max(batch_size, BLOCK_ROWS)
            for block in csv_stream.blocks(input_path, size, skip=output.done):
                output.write(answer(block))  # on disk before the next block is sent
                answered(output.done)
    except BaseException:
        output.close()
        if output.done:
            click.echo(
                f"interrupted: the {output.done:,} rows answered are in {output.path}; "
                "run the same command with --resume to go on",
                err=True,
            )
        raise
    output.finish()


@contextlib.contextmanager
def _progress(
    quiet: bool, total: int | None, label: str, *, start: int = 0
) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr from the first second (rows done of ``total``, or a count)."""
    if quiet:
        yield lambda _done: None
        return
    if total is None:
        last = [0.0]

        def count(done: int) -> None:
            if time.monotonic() - last[0] >= 1.0:
                last[0] = time.monotonic()
                click.echo(f"{label}: {done:,} rows", err=True)

        yield count
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True) as bar:
        bar.update(start)
        seen = [start]

        def update(done: int) -> None:
            bar.update(done - seen[0])
            seen[0] = done

        yield update
