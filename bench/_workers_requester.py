"""One requester process of the workers benchmark (started with multiprocessing's spawn: a fresh
interpreter, its own GIL, as a department's process would be).

It warms up (imports, the SDK's catalog and key), waits at the barrier with the others, then makes
``calls`` comparisons of its records through ``client_sdk``, each over a new connection (a new
``ComparisonClient``) so that the kernel spreads the calls over the node's workers as it spreads
many departments' connections; every answer is checked.
"""

from __future__ import annotations

import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from _e2e_scenario import KEY, PURPOSE, RESOURCE, Queries, check_result

from client_sdk import ComparisonClient, Credentials
from client_sdk.client import ComparisonMode as SdkMode


def run_requester(
    target: str,
    pki: tuple[Path, Path, Path],
    mode: SdkMode,
    queries: Queries,
    calls: int,
    barrier: Barrier,
    results: Queue[dict[str, Any]],
) -> None:
    credentials = Credentials.from_files(*pki)
    warm_up = Queries(queries.records[:20], queries.present[:20])
    with ComparisonClient(target, credentials, timeout=600) as client:
        result = client.compare(RESOURCE, warm_up.records, key=KEY, mode=mode, purpose=PURPOSE)
        check_result(result, warm_up, f"{mode} warm-up")
    barrier.wait(timeout=300)
    started, cpu = time.monotonic(), time.process_time()
    for call in range(calls):
        with ComparisonClient(target, credentials, timeout=600) as client:
            result = client.compare(RESOURCE, queries.records, key=KEY, mode=mode, purpose=PURPOSE)
        check_result(result, queries, f"{mode} call {call + 1}")
    results.put(
        {
            "items": calls * len(queries.records),
            "ended": time.monotonic(),
            "cpu_seconds": time.process_time() - cpu,
            "seconds": time.monotonic() - started,
        }
    )
