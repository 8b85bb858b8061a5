"""``bidui provider load --scheduler ADDRESS``: the per-chunk work on a Dask distributed cluster.

```
driver (the load command)                              Dask workers (the provider's own)
source --chunks of 50k rows--> submit index_chunk(work, rows)  --> canonicalise, tag / Evaluate
   at most `window` chunks in flight (as_completed)            <-- 32-byte entries + invalid rows
results added in source order --> the same indexes, written as a local load writes them
```

Dask distributed rather than Ray or Spark: it is pure Python, installed from PyPI with pip
(``bidui[cluster]``), has a ``LocalCluster`` the tests run for real, and ``Client(address)`` is all
a load needs of a cluster: the address of its scheduler.

What crosses the network, and what does not:

* The driver streams the source (``provider_node.resources.source``) and never holds more than
  ``window``
  chunks: a chunk is read only when one in flight has been added to the indexes.
* A task's arguments are its chunk's rows (only the fields the index keys need) and the
  ``ChunkWork``: the index keys and the resource's *derived* keys (its HMAC key, its RFC 9497
  private keys), never the node's master secrets. They are task arguments, so a worker holds them
  only while the task runs; nothing is scattered to the workers, so no source value lands in a
  worker's store, from which Dask may spill to disk.
* A worker returns only the entries (32 bytes per record and index) and the invalid rows' (row,
  field, reason). The task never raises: a failure comes back as the exception's type name, so
  the worker's "Compute Failed" log (which prints the task) is never written; the arguments'
  reprs show no value and no key in any case.
* The indexes are built and written on the driver exactly as a local load writes them
  (``provider_node.resources.loader.load_resource``): same files, same format, same atomic rename.

The cluster must be the provider's own, on its premises: its workers see source values and keys.
Use TLS between the driver, the scheduler and the workers (``tls://`` addresses; the certificates
come from Dask's configuration, e.g. ``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``), and install the same
bidui on the workers: a worker encoding records under another canonical version is refused.
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, cast

from comparator.canonical import CANONICAL_VERSION
from provider_node.resources.loader import ChunkResult, ChunkRunner, ChunkWork, index_chunk
from provider_node.resources.source import LoaderError, Record

__all__ = [
    "CONNECT_TIMEOUT",
    "ClusterError",
    "DaskClient",
    "SourceRows",
    "cluster_runner",
    "distributed_runner",
]

#: Seconds to reach the scheduler, and then to see at least one worker.
CONNECT_TIMEOUT = 10.0
INSTALL_HINT = 'pip install "bidui[cluster]"'


class ClusterError(LoaderError):
    """The cluster cannot be used: the package is missing, the scheduler unreachable, no worker,
    or a task failed. The message names the scheduler's address, never a value or a key."""


class DaskFuture(Hashable, Protocol):
    """What is used of ``distributed.Future`` (``distributed`` is imported only when used)."""

    def result(self) -> object: ...
    def release(self) -> None: ...


class DaskClient(Protocol):
    """What is used of ``distributed.Client``."""

    loop: object  # its event loop, for ``as_completed``

    def nthreads(self) -> dict[str, int]: ...
    def submit(self, func: Callable[..., object], /, *args: object, key: str) -> DaskFuture: ...
    def cancel(self, futures: list[DaskFuture]) -> None: ...
    def wait_for_workers(self, n_workers: int, timeout: float | None = None) -> None: ...
    def close(self) -> None: ...


def _distributed() -> Any:
    """The ``distributed`` package, imported when a cluster is used (``ImportError`` if absent)."""
    return importlib.import_module("distributed")


class SourceRows:
    """A chunk's rows as a task argument: the repr Dask may log counts the rows, shows none."""

    __slots__ = ("records",)

    def __init__(self, records: Sequence[Record]) -> None:
        self.records = records

    def __repr__(self) -> str:
        return f"<{len(self.records)} source rows>"

    def __getstate__(self) -> tuple[Sequence[Record]]:
        return (self.records,)  # never empty: pickle skips __setstate__ for a false state

    def __setstate__(self, state: tuple[Sequence[Record]]) -> None:
        (self.records,) = state


def _chunk_task(work: ChunkWork, rows: SourceRows) -> tuple[int, ChunkResult | None, str]:
    """Runs on a worker: (the worker's canonical version, the result or None, why not)."""
    try:
        return CANONICAL_VERSION, index_chunk(work, rows.records), ""
    except Exception as exc:  # the message might repeat a value: only its type goes back
        return CANONICAL_VERSION, None, type(exc).__name__


def distributed_runner(
    client: DaskClient, address: str, *, window: int | None = None
) -> ChunkRunner:
    """A ``ChunkRunner`` submitting each chunk as one task to ``client``'s cluster.

    ``window``: chunks in flight at most, submitted or finished but not yet added (default: twice
    the workers' threads, at least 2); results are added in source order.
    """
    if window is None:
        window = max(2, 2 * sum(client.nthreads().values()))
    if window < 1:
        raise ValueError("window must be at least 1")
    in_flight = window

    def run(work: ChunkWork, chunks: Iterable[Sequence[Record]]) -> Iterator[ChunkResult]:
        load_id = uuid.uuid4().hex[:12]
        source = iter(enumerate(chunks))
        pending: dict[DaskFuture, tuple[int, str]] = {}  # future -> (chunk number, its rows)
        finished: dict[int, ChunkResult] = {}
        read = 0  # source rows read so far
        done_reading = False
        following = 0  # the next chunk to hand back

        def submit_more(completed: Any) -> None:
            nonlocal done_reading, read
            while not done_reading and len(pending) + len(finished) < in_flight:
                item = next(source, None)
                if item is None:
                    done_reading = True
                    return
                number, records = item
                future = client.submit(
                    _chunk_task, work, SourceRows(records), key=f"bidui-load-{load_id}-{number}"
                )
                pending[future] = (number, f"source rows {read + 1}-{read + len(records)}")
                read += len(records)
                completed.add(future)

        completed = _distributed().as_completed(loop=client.loop)
        try:
            submit_more(completed)
            for future in completed:
                number, rows = pending.pop(future)
                finished[number] = _result(future, address, rows)
                future.release()
                while following in finished:
                    yield finished.pop(following)
                    following += 1
                submit_more(completed)
        finally:
            if pending:
                client.cancel(list(pending))

    return run


def _result(future: DaskFuture, address: str, where: str) -> ChunkResult:
    try:
        outcome = cast(tuple[int, ChunkResult | None, str], future.result())
        version, result, failure = outcome
    except Exception as exc:  # a worker died, the task could not be unpickled there, ...
        raise ClusterError(f"the cluster at {address} failed on {where}: {_detail(exc)}") from None
    if version != CANONICAL_VERSION:
        raise ClusterError(
            f"a worker of the cluster at {address} encodes records under canonical version "
            f"{version}, this node under {CANONICAL_VERSION}: install this bidui on the workers"
        )
    if result is None:
        raise ClusterError(f"a worker of the cluster at {address} failed on {where}: {failure}")
    return result


@contextmanager
def cluster_runner(
    address: str, *, timeout: float = CONNECT_TIMEOUT, window: int | None = None
) -> Iterator[ChunkRunner]:
    """Connect to the Dask scheduler at ``address`` (``tcp://host:8786``, ``tls://...``), wait
    for a worker, and yield a ``ChunkRunner`` on its cluster; the client is closed on exit.

    Raises ``ClusterError`` if ``distributed`` is not installed, or the scheduler cannot be reached
    or shows no worker within ``timeout`` seconds."""
    try:
        distributed = _distributed()
    except ImportError:
        raise ClusterError(
            f"--scheduler {address}: loading on a Dask cluster needs the distributed package "
            f"({INSTALL_HINT})"
        ) from None
    _reach(address, timeout)
    try:
        client: DaskClient = distributed.Client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:  # reached a moment ago: the scheduler went away, or refused us
        raise ClusterError(
            f"cannot connect to the Dask scheduler at {address}: {_detail(exc)}"
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except Exception:
            raise ClusterError(
                f"the Dask scheduler at {address} has no worker after {timeout:g} s: start "
                f"`dask worker {address}` on the provider's machines"
            ) from None
        yield distributed_runner(client, address, window=window)
    finally:
        client.close()


def _reach(address: str, timeout: float) -> None:
    """Open and close one connection to the scheduler (with the TLS settings of Dask's
    configuration), retrying for ``timeout`` seconds: a ``Client`` that fails to connect leaves
    an object whose cleanup prints a traceback, this leaves nothing."""
    connect = importlib.import_module("distributed.comm").connect
    security = importlib.import_module("distributed.security").Security()

    async def probe() -> None:
        comm = await connect(address, timeout=timeout, **security.get_connection_args("client"))
        await comm.close()

    try:
        asyncio.run(probe())
    except OSError as exc:  # TimeoutError too
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
            f"({_detail(exc)}): is `dask scheduler` running there, and the address right?"
        ) from None
    except Exception as exc:  # ValueError: not an address; an unknown protocol; TLS settings
        raise ClusterError(
            f"cannot use the Dask scheduler address {address}: {_detail(exc)}"
        ) from None


def _detail(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__
