"""One shared worker pool that splits large OPRF batches across cores.

libsodium is reached through ctypes, which releases the GIL for the duration of each call; the
scalar multiplications of different chunks of a batch therefore run in parallel threads.

* The pool is created once, lazily, and reused by every caller: the gRPC server calls in from many
  threads at once and ``ThreadPoolExecutor.submit`` is thread-safe.
* The calling thread runs the first chunk itself, so a call never waits for a pool thread to start
  it, and no task ever waits on another task (no deadlock however many callers there are).
* Batches below ``PARALLEL_THRESHOLD`` items run in the calling thread only.
* Worker count: ``BIDUI_OPRF_WORKERS`` in the environment, or ``set_workers(n)``; default
  ``min(os.cpu_count(), 4)``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

#: Batches smaller than this are not split: thread hand-off would cost more than it saves.
PARALLEL_THRESHOLD = 64

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_workers: int | None = None


def _default_workers() -> int:
    env = os.environ.get("BIDUI_OPRF_WORKERS")
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError("BIDUI_OPRF_WORKERS must be a positive integer") from None
        if value < 1:
            raise ValueError("BIDUI_OPRF_WORKERS must be a positive integer")
        return value
    return max(1, min(os.cpu_count() or 1, 4))


def workers() -> int:
    """The number of threads a large batch is split across (the caller's thread included)."""
    global _workers
    with _lock:
        if _workers is None:
            _workers = _default_workers()
        return _workers


def set_workers(n: int) -> None:
    """Set the worker count. The old pool, if any, finishes its queued work and is dropped."""
    global _workers, _pool
    if n < 1:
        raise ValueError("worker count must be at least 1")
    with _lock:
        old, _pool, _workers = _pool, None, n
    if old is not None:
        old.shutdown(wait=False)


def _get_pool(n: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="bidui-oprf")
        return _pool


def split_ranges(n: int, parts: int) -> list[tuple[int, int]]:
    """Split range(n) into ``parts`` contiguous (start, stop) ranges of near-equal size."""
    parts = max(1, min(parts, n))
    size, extra = divmod(n, parts)
    ranges = []
    start = 0
    for p in range(parts):
        stop = start + size + (1 if p < extra else 0)
        ranges.append((start, stop))
        start = stop
    return ranges


def map_ranges(fn: Callable[[int, int], T], n: int) -> list[T]:
    """``[fn(start, stop) for each chunk of range(n)]``, the chunks run in parallel when large.

    Every chunk runs to completion before anything is raised; if several chunks fail, the error of
    the earliest chunk is raised, so "the first bad element" is the first in the whole batch.
    """
    k = workers()
    if n < PARALLEL_THRESHOLD or k == 1:
        return [fn(0, n)]
    ranges = split_ranges(n, k)
    pool = _get_pool(k)
    futures: list[Future[T]] = [pool.submit(fn, a, b) for a, b in ranges[1:]]
    results: list[T] = []
    first_error: BaseException | None = None
    try:
        results.append(fn(*ranges[0]))
    except BaseException as exc:
        first_error = exc
    for fut in futures:
        try:
            results.append(fut.result())
        except BaseException as exc:
            if first_error is None:
                first_error = exc
    if first_error is not None:
        raise first_error
    return results


def concat(parts: list[list[bytes]]) -> list[bytes]:
    """Join the per-chunk results of ``map_ranges`` back into one list, in order."""
    if len(parts) == 1:
        return parts[0]
    out: list[bytes] = []
    for part in parts:
        out.extend(part)
    return out
