"""The gRPC side of the node: the server and its worker processes, the servicers (protobuf in,
domain calls, protobuf out), the one mapping of the node's errors to gRPC status, and the
open-files limit a busy server needs.

Nothing below this room imports protobuf or grpc's server API.
"""
