"""Generated gRPC stubs for protobuf package bidui.v1 (scripts/gen_proto.py). Do not edit."""
