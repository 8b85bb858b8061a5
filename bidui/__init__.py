"""bidui: compare records with another department's data without the data leaving its premises.

``bidui.v1`` holds the generated gRPC stubs (see ``scripts/gen_proto.py``); ``bidui.cli`` is the
``bidui`` command.
"""

__version__ = "0.1.0"
