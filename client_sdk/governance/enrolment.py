"""A department's key and certificate request, made on its own machine (article 34).

::

    department (its own machine)                 provider's operator (the node's machine)
    make_key_and_request(D, dir)
      dir/D.key  EC P-256, 0600, never leaves
      dir/D.csr  -------- sent to the operator -->  bidui provider pki sign D.csr
                                                   (provider_node.identity.pki.sign_client_request)
      dir/D.pem  <------- the signed certificate --
    Credentials.from_files(ca.pem, D.pem, D.key)

The request names the department the one way the node reads it: a single subject alternative
name ``urn:bidui:department:<D>`` (PROTOCOL.md section 1). Its subject CN is the same id, for
people only; it asks for the clientAuth usage. The operator's CA decides the rest (lifetime, key
usage) and takes only the public key and the department from the request.

The private key is written once, readable by its owner only, and never printed: an existing key
is never overwritten, because a certificate may already have been signed for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from client_sdk.connection.identity import DEPARTMENT_ID, DEPARTMENT_URN_PREFIX
from client_sdk.errors import CredentialsError

__all__ = ["make_key_and_request"]

StrPath = str | os.PathLike[str]


def make_key_and_request(department: str, directory: StrPath) -> tuple[Path, Path]:
    """Make ``<directory>/<department>.key`` and ``<department>.csr``; returns their paths.

    The key is EC P-256, unencrypted PKCS#8 PEM with mode 0600 (``directory`` is made, 0700,
    when missing); the request is PEM, signed by that key. Raises :class:`CredentialsError`
    for a department id the node would refuse (1 to 64 of ``a-z 0-9 _ -``, starting with a
    letter or digit), when the key file already exists (it is kept as it is), or when a file
    cannot be written (then neither file is left behind).
    """
    if not isinstance(department, str) or not DEPARTMENT_ID.fullmatch(department):
        raise CredentialsError(
            f"{department!r} is not a department id: 1 to 64 of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit"
        )
    folder = Path(directory)
    key_path, csr_path = folder / f"{department}.key", folder / f"{department}.csr"
    key = ec.generate_private_key(ec.SECP256R1())
    request_pem = _certificate_request(department, key).public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise CredentialsError(f"cannot make directory {str(folder)!r}: {_why(exc)}") from None
    try:
        _write_new(key_path, key_pem, 0o600)
    except FileExistsError:
        raise CredentialsError(
            f"key file {str(key_path)!r} already exists and is kept as it is (a certificate may "
            "have been signed for it): move it away first, or choose another directory"
        ) from None
    except OSError as exc:
        raise CredentialsError(f"cannot write key file {str(key_path)!r}: {_why(exc)}") from None
    try:
        _replace(csr_path, request_pem)
    except OSError as exc:
        key_path.unlink(missing_ok=True)  # a key without its request would block the next try
        raise CredentialsError(
            f"cannot write certificate request {str(csr_path)!r}: {_why(exc)}"
        ) from None
    return key_path, csr_path


def _certificate_request(
    department: str, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateSigningRequest:
    """The CSR for ``department`` signed by ``key``: CN and the one department URI SAN, with
    the clientAuth extended key usage requested."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, department)]))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"{DEPARTMENT_URN_PREFIX}{department}")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` and write ``data``; FileExistsError if anything is there
    (O_EXCL: a symbolic link is not followed either)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with open(descriptor, "wb") as out:
            os.fchmod(out.fileno(), mode)  # the umask may only have narrowed it: make it exact
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so no half-written request remains
    (a request left from an earlier key is replaced: it is public, and useless without it)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    _write_new(temporary, data, 0o644)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _why(error: OSError) -> str:
    return error.strerror or type(error).__name__
