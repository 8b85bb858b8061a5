"""A stand-in provider node for the SDK's transport tests: the catalog and comparison services
behind grpc's own mutual TLS (``require_client_auth=True``), as the real node serves them.

It answers one resource, ``residents`` keyed on ``id_number``, from a fixed set of resident ID
numbers, in hashed and blinded mode, and can be stopped and started again on the same port — a
restart forgets open blinded sessions, as a real node's does. It audits nothing and checks no
grant: the tests here are about connections, certificates and retries, not about the node.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import catalog_pb2_grpc as _catalog_pb2_grpc
from bidui.v1 import comparison_pb2 as _comparison_pb2
from bidui.v1 import comparison_pb2_grpc as _comparison_pb2_grpc
from comparator.canonical import CANONICAL_VERSION, ComparisonKey, Domain, encode_records
from comparator.fields import resident_id_check_character
from comparator.index import pack_matches
from comparator.keyed_hash import KeyedHasher, generate_hmac_key
from comparator.oprf import SUITE_ID, Mode, OprfServer, VoprfServer, generate_key_pair

RESOURCE = "residents"
KEY = "id_number"
_DOMAIN = Domain(RESOURCE, KEY, 1)
_COMPARISON_KEY = ComparisonKey.from_names(KEY, [KEY], {KEY: "cn_resident_id"})


def resident_ids(count: int, start: int = 0) -> list[str]:
    """``count`` valid resident ID numbers (Luzhou, born 1980-01-01)."""
    bodies = [f"51050219800101{n:03d}" for n in range(start, start + count)]
    return [body + resident_id_check_character(body) for body in bodies]


class FakeNode:
    """The node's two services on 127.0.0.1, stoppable and restartable on its port.

    ``calls`` counts RPCs by method; ``blinded_seen`` keeps every BlindEvaluate's elements and
    ``headers`` every comparison request's header; ``hooks[method]`` runs inside that handler
    before it answers (to hold a call in flight, or to restart the node between two steps);
    ``refusals[method]`` are (status, details) the next calls of it are refused with, in turn.
    """

    def __init__(self, server_key: bytes, server_cert: bytes, client_ca: bytes, present: list[str]):
        self._credentials = grpc.ssl_server_credentials(
            [(server_key, server_cert)], root_certificates=client_ca, require_client_auth=True
        )
        self._hmac_key = generate_hmac_key()
        secret, public = generate_key_pair(Mode.VOPRF)
        # Both RFC 9497 modes, each its own key, chosen by the header's ``verifiable``.
        self._servers: dict[bool, OprfServer | VoprfServer] = {
            False: OprfServer(generate_key_pair(Mode.OPRF)[0]),
            True: VoprfServer(secret),
        }
        self._public_key = public
        encoded = encode_records(_DOMAIN, _COMPARISON_KEY, [{KEY: i} for i in present]).encoded
        self._tags = set(KeyedHasher(self._hmac_key, _DOMAIN).tags(encoded))
        self._outputs = {
            verifiable: set(server.evaluate_batch(encoded))
            for verifiable, server in self._servers.items()
        }
        self._sessions: dict[str, tuple[int, bool]] = {}
        self._lock = threading.Lock()
        self.calls: collections.Counter[str] = collections.Counter()
        self.blinded_seen: list[list[bytes]] = []
        self.hooks: dict[str, Callable[[], None]] = {}
        self.headers: list[_comparison_pb2.ComparisonHeader] = []
        self.refusals: collections.defaultdict[str, list[tuple[grpc.StatusCode, str]]] = (
            collections.defaultdict(list)
        )
        self.port = 0
        self._server: grpc.Server | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def forget_sessions(self) -> None:
        """Drop the open blinded sessions, as a restarted node has none."""
        with self._lock:
            self._sessions.clear()

    def start(self) -> None:
        """Serve (on the port of the first start, once there is one); a fresh process's state."""
        self.forget_sessions()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)]
        )
        _catalog_pb2_grpc.add_CatalogServiceServicer_to_server(_Catalog(self), server)
        _comparison_pb2_grpc.add_ComparisonServiceServicer_to_server(_Comparison(self), server)
        self.port = server.add_secure_port(f"127.0.0.1:{self.port}", self._credentials)
        server.start()
        self._server = server

    def stop(self, grace: float | None = None) -> None:
        """Stop: in-flight calls finish within ``grace`` seconds (None: cancelled at once)."""
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    def restart_later(self, down_for: float, grace: float | None = None) -> threading.Thread:
        """Stop now and start again after ``down_for`` seconds, from another thread."""

        def restart() -> None:
            self.stop(grace)
            time.sleep(down_for)
            self.start()

        thread = threading.Thread(target=restart, name="fake-node-restart")
        thread.start()
        return thread

    def resource(self) -> _catalog_pb2.Resource:
        return _catalog_pb2.Resource(
            id=RESOURCE,
            fields=[_catalog_pb2.Field(name=KEY, type="cn_resident_id")],
            comparison_keys=[_catalog_pb2.ComparisonKey(name=KEY, fields=[KEY])],
            modes=[_catalog_pb2.MODE_HASHED, _catalog_pb2.MODE_BLINDED],
            key_version=_DOMAIN.key_version,
            oprf_suite=SUITE_ID,
            oprf_public_key=self._public_key,
            oprf_modes=[_catalog_pb2.OPRF_MODE_OPRF, _catalog_pb2.OPRF_MODE_VOPRF],
            canonical_version=CANONICAL_VERSION,
        )

    def _enter(self, method: str, context: Any, request: Any = None) -> None:
        self.calls[method] += 1
        if request is not None:
            self.headers.append(request.header)
        hook = self.hooks.get(method)
        if hook is not None:
            hook()
        if self.refusals[method]:
            context.abort(*self.refusals[method].pop(0))


def _answer(found: list[bool]) -> _comparison_pb2.MatchResult:
    return _comparison_pb2.MatchResult(
        match_bits=pack_matches(found),
        item_count=len(found),
        match_count=sum(found),
        comparison_id=str(uuid.uuid4()),
    )


class _Catalog(_catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, node: FakeNode) -> None:
        self._node = node

    def ListResources(self, request: Any, context: Any) -> Any:
        self._node._enter("ListResources", context)
        return _catalog_pb2.ListResourcesResponse(resources=[self._node.resource()])

    def DescribeResource(self, request: Any, context: Any) -> Any:
        self._node._enter("DescribeResource", context)
        return self._node.resource()

    def GetHashKey(self, request: Any, context: Any) -> Any:
        self._node._enter("GetHashKey", context)
        return _catalog_pb2.GetHashKeyResponse(
            hmac_key=self._node._hmac_key, key_version=_DOMAIN.key_version, tag_length=32
        )


class _Comparison(_comparison_pb2_grpc.ComparisonServiceServicer):
    def __init__(self, node: FakeNode) -> None:
        self._node = node

    def CompareHashed(self, request: Any, context: Any) -> Any:
        self._node._enter("CompareHashed", context, request)
        return _answer([tag in self._node._tags for tag in request.tags])

    def BlindEvaluate(self, request: Any, context: Any) -> Any:
        node = self._node
        node._enter("BlindEvaluate", context, request)
        blinded = list(request.blinded_elements)
        node.blinded_seen.append(blinded)
        verifiable = request.header.verifiable
        evaluation = node._servers[verifiable].blind_evaluate(blinded)
        comparison_id = str(uuid.uuid4())
        with node._lock:
            node._sessions[comparison_id] = (len(blinded), verifiable)
        return _comparison_pb2.BlindEvaluateResponse(
            comparison_id=comparison_id,
            evaluated_elements=evaluation.elements,
            proof=evaluation.proof or b"",
            key_version=_DOMAIN.key_version,
        )

    def MatchBlinded(self, request: Any, context: Any) -> Any:
        node = self._node
        node._enter("MatchBlinded", context)
        with node._lock:
            session = node._sessions.pop(request.comparison_id, None)
        if session is None:  # the real node's words for a session it does not hold
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "no open blinded comparison: it expired, was already answered, or never opened; "
                "start again with BlindEvaluate",
            )
        outputs = node._outputs[session[1]]
        return _answer([output in outputs for output in request.outputs])
