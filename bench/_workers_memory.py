"""What one match index costs per record in each of K processes, memory-mapped or read in.

K fresh processes (spawn) each measure ``memory_full_info`` (psutil) after their imports, load the
same index file (``MatchIndex.load(path, mmap=...)``), wait until all K have loaded, and measure
again: the growth divided by the records is the index's cost per record in that process.

- RSS counts every page the process touches, shared or not: 36 bytes per record either way.
- USS counts the pages only that process holds: 36 read in, 4 (the search prefixes) mapped.
- PSS divides shared pages among the processes sharing them: 36 read in, 32 / K + 4 mapped.

glibc would keep freed scratch (the order check's temporaries) in its heap and blur the
numbers, so the processes run with ``MALLOC_MMAP_THRESHOLD_`` at 64 KiB: large blocks are mapped
and unmapped on their own.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

FIELDS = ("rss", "uss", "pss")


def _measure(path: Path, mmap: bool, barrier: Barrier, results: Queue[dict[str, Any]]) -> None:
    import psutil

    from comparator.index import MatchIndex

    process = psutil.Process()
    before = process.memory_full_info()
    index = MatchIndex.load(path, mmap=mmap)
    barrier.wait(timeout=300)  # every process has the index now
    time.sleep(0.2)
    after = process.memory_full_info()
    results.put(
        {name: (getattr(after, name) - getattr(before, name)) / len(index) for name in FIELDS}
    )
    barrier.wait(timeout=300)  # keep the mapping until every process has measured


def index_memory(path: Path, processes: int = 2) -> dict[str, Any]:
    """Bytes per record of the index at ``path`` in each of ``processes`` processes, mapped and
    read in (the mean over the processes)."""
    context = multiprocessing.get_context("spawn")
    out: dict[str, Any] = {"processes": processes}
    saved = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    os.environ["MALLOC_MMAP_THRESHOLD_"] = str(64 * 1024)
    try:
        for mmap in (False, True):
            barrier = context.Barrier(processes)
            results: Queue[dict[str, Any]] = context.Queue()
            workers = [
                context.Process(target=_measure, args=(path, mmap, barrier, results))
                for _ in range(processes)
            ]
            for worker in workers:
                worker.start()
            measured = [results.get(timeout=600) for _ in workers]
            for worker in workers:
                worker.join(60)
                if worker.exitcode != 0:
                    raise SystemExit(f"index memory measurement failed ({worker.exitcode})")
            out["mapped" if mmap else "read_in"] = {
                name: statistics.fmean(m[name] for m in measured) for name in FIELDS
            }
    finally:
        if saved is None:
            os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)
        else:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = saved
    return out
