"""The CatalogService servicer: protobuf in, ``ProviderNode`` calls, protobuf out. Nothing else;
refusals reach ``status.abort_with`` through ``servicer.guarded``."""

from __future__ import annotations

import grpc

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import catalog_pb2_grpc as _catalog_pb2_grpc
from comparator.keyed_hash import TAG_LENGTH
from provider_node.core.vocabulary import Action
from provider_node.resources.catalog import ServedResource
from provider_node.transport.catalog_proto import resource_to_proto
from provider_node.transport.guarded import ServicerBase, guarded

__all__ = ["CatalogServicer"]


def _resource_message(served: ServedResource) -> _catalog_pb2.Resource:
    # Record counts only where the operator allows it (resource_to_proto checks).
    count = max((len(index) for index in served.indexes.values()), default=None)
    return resource_to_proto(
        served.resource,
        oprf_public_key=served.oprf_public_key,
        last_refresh=served.last_refresh,
        record_count=count,
    )


class CatalogServicer(ServicerBase, _catalog_pb2_grpc.CatalogServiceServicer):
    def ListResources(
        self, request: _catalog_pb2.ListResourcesRequest, context: grpc.ServicerContext
    ) -> _catalog_pb2.ListResourcesResponse:
        def call() -> _catalog_pb2.ListResourcesResponse:
            self._caller(context, Action.CATALOG_READ)
            served = self._node.resources.values()
            return _catalog_pb2.ListResourcesResponse(
                resources=[_resource_message(s) for s in served]
            )

        return guarded(context, call)

    def DescribeResource(
        self, request: _catalog_pb2.DescribeResourceRequest, context: grpc.ServicerContext
    ) -> _catalog_pb2.Resource:
        def call() -> _catalog_pb2.Resource:
            self._caller(context, Action.CATALOG_READ, request.resource_id)
            return _resource_message(self._node.describe(request.resource_id))

        return guarded(context, call)

    def GetHashKey(
        self, request: _catalog_pb2.GetHashKeyRequest, context: grpc.ServicerContext
    ) -> _catalog_pb2.GetHashKeyResponse:
        def call() -> _catalog_pb2.GetHashKeyResponse:
            caller = self._caller(context, Action.HASH_KEY_FETCH, request.resource_id)
            key, version = self._node.hash_key(caller, request.resource_id, request.comparison_key)
            return _catalog_pb2.GetHashKeyResponse(
                hmac_key=key, key_version=version, tag_length=TAG_LENGTH
            )

        return guarded(context, call)
