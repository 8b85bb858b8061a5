"""Who is calling: the requesting department named in its client certificate (article 34).

The TLS layer already refused any client without a certificate chained to the node's CA (the
server requires client authentication), so a request that reaches this code has a verified
certificate. What is left to check here is that the certificate names a department.
"""

from __future__ import annotations

import grpc

from provider_node.errors import UnauthenticatedError
from provider_node.node import Caller
from provider_node.pki import certificate_fingerprint, department_from_certificate


def caller_from_context(context: grpc.ServicerContext) -> Caller:
    """The verified department behind this RPC; raises ``UnauthenticatedError`` otherwise."""
    # grpc returns a list of PEM bytes per property (its type stubs say plain bytes).
    pem_certs: list[bytes] | None = context.auth_context().get("x509_pem_cert")  # type: ignore[assignment]
    if not pem_certs:
        raise UnauthenticatedError(
            "no client certificate: connect with the certificate the provider issued to your "
            "department"
        )
    pem = pem_certs[0]
    fingerprint = certificate_fingerprint(pem)
    try:
        department = department_from_certificate(pem)
    except ValueError:
        raise UnauthenticatedError(
            "the client certificate names no department (expected a URI SAN "
            "urn:bidui:department:<id>)",
            cert_fingerprint=fingerprint,
        ) from None
    return Caller(department=department, cert_fingerprint=fingerprint)
