"""Who is calling: the requesting department named in its client certificate (article 34).

The TLS front (``tls_front.py``) asked for the client's certificate and verified its chain against
the node's CA; here the servicers look that result up by the connection's loopback port and turn
it into a ``Caller``, or into ``UnauthenticatedError`` with the reason.
"""

from __future__ import annotations

import grpc

from provider_node.errors import UnauthenticatedError
from provider_node.node import Caller
from provider_node.pki import certificate_fingerprint, department_from_certificate
from provider_node.tls_front import PeerRegistry


def caller_from_context(context: grpc.ServicerContext, peers: PeerRegistry) -> Caller:
    """The verified department behind this RPC; raises ``UnauthenticatedError`` otherwise."""
    identity = peers.lookup(context.peer())
    if identity is None:
        # Someone reached the internal port directly, around the TLS front.
        raise UnauthenticatedError("connect through the node's TLS port with a client certificate")
    pem = identity.certificate_pem
    fingerprint = certificate_fingerprint(pem) if pem else ""
    if identity.failure is not None or pem is None:
        raise UnauthenticatedError(
            identity.failure or "no client certificate", cert_fingerprint=fingerprint
        )
    try:
        department = department_from_certificate(pem)
    except ValueError:
        raise UnauthenticatedError(
            "the client certificate names no department (expected a URI SAN "
            "urn:bidui:department:<id>)",
            cert_fingerprint=fingerprint,
        ) from None
    return Caller(department=department, cert_fingerprint=fingerprint)
