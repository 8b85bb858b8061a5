"""Requesters under load, every RPC they make written down: what the clients received.

``RawRequester`` speaks the wire protocol itself (CompareHashed; BlindEvaluate then MatchBlinded),
so every RPC, its status, its duration and the comparison id it carried back are seen exactly;
each comparison gets a request id of its own, which the node copies into every audit record of
that comparison (the opening, the answer or the abandonment, a withheld follow-up). ``Load``
runs such steps on threads until stopped; ``Ledger`` is what the clients received, to be held
against what the audit log holds (``accounting``).
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from bidui.v1 import catalog_pb2, catalog_pb2_grpc, comparison_pb2, comparison_pb2_grpc
from client_sdk import BiduiError, ComparisonClient
from comparator.canonical import ComparisonKey, Domain, FieldSpec, encode_records
from comparator.keyed_hash import KeyedHasher
from comparator.oprf import Evaluation, OprfClient
from tests.faults.node_process import NodeDir
from tests.integration.conftest import NodeUnderTest

__all__ = [
    "PURPOSE",
    "Ledger",
    "Load",
    "RawRequester",
    "Rpc",
    "requester_for",
    "sdk_compare",
    "show",
]

PURPOSE = "fault test: an operator's worst day (issue 8)"
RESOURCE = "residents"
KEY = "id_number"

#: RPCs whose success means the requester holds an answer (match bits).
ANSWERING = frozenset({"CompareHashed", "MatchBlinded", "compare"})


@dataclass(frozen=True)
class Rpc:
    """One call as the client saw it; times are ``time.monotonic()``."""

    worker: str
    method: str
    request_id: str
    started: float
    ended: float
    code: str  # "OK" or the gRPC status name
    comparison_ids: tuple[str, ...] = ()
    details: str = ""

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def ok(self) -> bool:
        return self.code == "OK"


class Ledger:
    """Every RPC the requesters made, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rpcs: list[Rpc] = []

    def add(self, rpc: Rpc) -> None:
        with self._lock:
            self._rpcs.append(rpc)

    @property
    def rpcs(self) -> list[Rpc]:
        with self._lock:
            return list(self._rpcs)

    def answered_ids(self) -> set[str]:
        """Comparison ids of every answer a requester received."""
        return {c for r in self.rpcs if r.ok and r.method in ANSWERING for c in r.comparison_ids}

    def evaluated_ids(self) -> set[str]:
        """Comparison ids of every blinded evaluation a requester received (step 1)."""
        return {
            c for r in self.rpcs if r.ok and r.method == "BlindEvaluate" for c in r.comparison_ids
        }

    def request_ids(self) -> set[str]:
        return {r.request_id for r in self.rpcs}

    def answers(self) -> list[Rpc]:
        return [r for r in self.rpcs if r.ok and r.method in ANSWERING]

    def failures(self) -> list[Rpc]:
        return [r for r in self.rpcs if not r.ok]


class RawRequester:
    """One requesting department's channel, comparing ``present`` + ``absent`` ID numbers."""

    def __init__(
        self,
        target: str,
        ca_cert: Path,
        client_cert: Path,
        client_key: Path,
        present: Sequence[str],
        absent: Sequence[str],
        *,
        rpc_timeout: float = 30.0,
    ) -> None:
        credentials = grpc.ssl_channel_credentials(
            ca_cert.read_bytes(),
            private_key=client_key.read_bytes(),
            certificate_chain=client_cert.read_bytes(),
        )
        self.channel = grpc.secure_channel(
            target,
            credentials,
            options=[
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 500),
            ],
        )
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(self.channel)
        self.comparison = comparison_pb2_grpc.ComparisonServiceStub(self.channel)
        self.rpc_timeout = rpc_timeout
        self.expected_matches = len(present)
        key = ComparisonKey(KEY, (FieldSpec(KEY, "cn_resident_id"),))
        self._records = [{KEY: n} for n in (*present, *absent)]
        self._key = key
        self._hasher: KeyedHasher | None = None
        self._voprf: OprfClient | None = None
        self._encoded: list[bytes] = []
        self._key_version = 0

    def close(self) -> None:
        self.channel.close()

    def prepare(self, within: float = 30.0) -> None:
        """Fetch the catalog entry and the hashed-mode key (before any fault is made)."""
        deadline = time.monotonic() + within
        while True:
            try:
                entry = self.catalog.DescribeResource(
                    catalog_pb2.DescribeResourceRequest(resource_id=RESOURCE), timeout=5
                )
                hash_key = self.catalog.GetHashKey(
                    catalog_pb2.GetHashKeyRequest(resource_id=RESOURCE, comparison_key=KEY),
                    timeout=5,
                )
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self._key_version = entry.key_version
        domain = Domain(RESOURCE, KEY, entry.key_version)
        batch = encode_records(domain, self._key, self._records)
        assert not batch.errors, batch.errors
        self._encoded = batch.encoded
        self._hasher = KeyedHasher(hash_key.hmac_key, domain)
        self._voprf = OprfClient()  # modeOPRF, the default

    def list_resources(self, timeout: float = 5.0) -> float:
        """ListResources; returns how long it took (raises on failure)."""
        started = time.monotonic()
        self.catalog.ListResources(catalog_pb2.ListResourcesRequest(), timeout=timeout)
        return time.monotonic() - started

    def _header(self, request_id: str) -> comparison_pb2.ComparisonHeader:
        return comparison_pb2.ComparisonHeader(
            resource_id=RESOURCE,
            comparison_key=KEY,
            purpose=PURPOSE,
            request_id=request_id,
            key_version=self._key_version,
        )

    def _call(
        self,
        ledger: Ledger,
        worker: str,
        name: str,
        method: Callable[..., object],
        request: object,
        request_id: str,
    ) -> object | None:
        started = time.monotonic()
        try:
            response = method(request, timeout=self.rpc_timeout)
        except grpc.RpcError as failure:
            code: grpc.StatusCode = failure.code()  # type: ignore[attr-defined]
            details: str = failure.details() or ""  # type: ignore[attr-defined]
            ledger.add(
                Rpc(worker, name, request_id, started, time.monotonic(), code.name, (), details)
            )
            return None
        cid = str(getattr(response, "comparison_id", ""))
        ledger.add(Rpc(worker, name, request_id, started, time.monotonic(), "OK", (cid,)))
        return response

    def hashed(self, ledger: Ledger, worker: str) -> bool:
        """One hashed comparison; True if answered."""
        assert self._hasher is not None, "prepare() first"
        request_id = uuid.uuid4().hex
        request = comparison_pb2.CompareHashedRequest(
            header=self._header(request_id), tags=self._hasher.tags(self._encoded)
        )
        result = self._call(
            ledger, worker, "CompareHashed", self.comparison.CompareHashed, request, request_id
        )
        if result is None:
            return False
        assert isinstance(result, comparison_pb2.MatchResult)
        assert result.match_count == self.expected_matches, result
        return True

    def blinded(self, ledger: Ledger, worker: str, *, finish: bool = True) -> str | None:
        """One blinded comparison (``finish=False``: step 1 only, the session left open).

        Returns the comparison id if step 1 succeeded (and step 2 too, when ``finish``)."""
        assert self._voprf is not None, "prepare() first"
        request_id = uuid.uuid4().hex
        blind = self._voprf.blind(self._encoded)
        evaluated = self._call(
            ledger,
            worker,
            "BlindEvaluate",
            self.comparison.BlindEvaluate,
            comparison_pb2.BlindEvaluateRequest(
                header=self._header(request_id), blinded_elements=list(blind.message)
            ),
            request_id,
        )
        if evaluated is None:
            return None
        assert isinstance(evaluated, comparison_pb2.BlindEvaluateResponse)
        if not finish:
            return evaluated.comparison_id
        outputs = self._voprf.finalize(
            blind.state, Evaluation(list(evaluated.evaluated_elements), None)
        )
        result = self._call(
            ledger,
            worker,
            "MatchBlinded",
            self.comparison.MatchBlinded,
            comparison_pb2.MatchBlindedRequest(
                comparison_id=evaluated.comparison_id, outputs=outputs
            ),
            request_id,
        )
        if result is None:
            return None
        assert isinstance(result, comparison_pb2.MatchResult)
        assert result.comparison_id == evaluated.comparison_id
        assert result.match_count == self.expected_matches, result
        return evaluated.comparison_id


def requester_for(
    node: NodeUnderTest | NodeDir,
    target: str | None = None,
    *,
    present: int = 15,
    absent: int = 5,
    prepare: bool = True,
) -> RawRequester:
    """A raw requester at ``node`` (in this process, or ``target`` for a node process), with
    the catalog entry and hashed-mode key fetched unless ``prepare=False``."""
    if target is None:
        assert isinstance(node, NodeUnderTest)
        target = node.target
    requester = RawRequester(
        target,
        node.ca_cert,
        node.client_cert,
        node.client_key,
        [r[0] for r in node.residents[:present]],
        [r[0] for r in node.absent[:absent]],
    )
    if prepare:
        requester.prepare()
    return requester


def answers_both_modes(node: NodeDir, target: str, ledger: Ledger, *, rounds: int = 1) -> None:
    """A fresh requester at ``target`` gets ``rounds`` hashed and blinded answers, each recorded."""
    fresh = requester_for(node, target)
    try:
        for _ in range(rounds):
            assert fresh.hashed(ledger, "after")
            assert fresh.blinded(ledger, "after")
    finally:
        fresh.close()


class Load:
    """Threads each repeating one step until ``stop``; a step's exception is kept, not lost."""

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def run(self, name: str, step: Callable[[], object], *, pause: float = 0.02) -> None:
        def loop() -> None:
            while not self._stopped.is_set():
                try:
                    step()
                except Exception:
                    self.errors.append(f"{name}: {traceback.format_exc()}")
                self._stopped.wait(pause)

        thread = threading.Thread(target=loop, name=f"fault-load-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        self._stopped.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"load threads still running after {timeout} s: {alive}"


def sdk_compare(
    client: ComparisonClient,
    ledger: Ledger,
    worker: str,
    present: Sequence[str],
    absent: Sequence[str] = (),
    *,
    mode: str = "blinded",
) -> bool:
    """One comparison through the SDK: one 'compare' in the ledger (its retries hidden inside),
    under a request id of its own; True if answered (and the answer is right)."""
    request_id = uuid.uuid4().hex
    started = time.monotonic()
    try:
        result = client.compare(
            RESOURCE,
            [{KEY: n} for n in (*present, *absent)],
            key=KEY,
            mode=mode,  # type: ignore[arg-type]
            purpose=PURPOSE,
            request_id=request_id,
        )
    except BiduiError as failure:
        ended = time.monotonic()
        code = failure.code.name if failure.code is not None else type(failure).__name__
        ledger.add(Rpc(worker, "compare", request_id, started, ended, code, (), repr(failure)))
        return False
    ended = time.monotonic()
    ledger.add(Rpc(worker, "compare", request_id, started, ended, "OK", result.comparison_ids))
    assert result.matched_count == len(present), result
    return True


def show(rpcs: Sequence[Rpc], origin: float, limit: int = 6) -> str:
    """A few RPCs, their times relative to ``origin``, for an assertion message."""
    return "; ".join(
        f"{r.worker} {r.method} started {r.started - origin:+.2f} s, {r.seconds:.2f} s, "
        f"{r.code} {r.details[:90]!r}"
        for r in list(rpcs)[:limit]
    )
