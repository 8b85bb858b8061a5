"""The node's secrets: two 32-byte master secrets in ``keys.dir``, and the per-resource keys.

```
keys.dir/oprf_seed   --DeriveKeyPair(seed, info(resource, version), mode)--> (sk, pk) per mode
keys.dir/hmac_master --HKDF-SHA256(info(resource, version))---------------> HMAC key (hashed)
```

Blinded mode's two RFC 9497 protocol modes have distinct keys, as the RFC specifies
(DeriveKeyPair's DST names the mode): modeOPRF's and modeVOPRF's, whose public key is published.

Deriving instead of storing one key per resource means a key rotation is a configuration change
(``key_version``) followed by ``bidui provider load``, and a backup of the node is two small files.
The info strings are length-prefixed so no two (resource, version) pairs can collide.

Key files are created with mode 0600 and never overwritten in place (written to a fresh temporary
file, then linked or renamed into place); a key file readable by group or others is refused.
No method of this module logs, prints or reprs secret bytes.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from comparator import oprf
from comparator.keyed_hash import HMAC_KEY_LENGTH

__all__ = [
    "HMAC_MASTER_FILE",
    "MASTER_SECRET_LENGTH",
    "OPRF_SEED_FILE",
    "SECRET_FILES",
    "KeyStoreError",
    "NodeKeys",
    "create_missing_keys",
    "key_info",
    "read_secret_file",
    "write_secret_file",
]

OPRF_SEED_FILE = "oprf_seed"
HMAC_MASTER_FILE = "hmac_master"
MASTER_SECRET_LENGTH = 32
#: The files of ``keys.dir``: each master secret is independent of the other.
SECRET_FILES = (OPRF_SEED_FILE, HMAC_MASTER_FILE)

_OPRF_PURPOSE = b"oprf"
_HMAC_PURPOSE = b"hmac"


class KeyStoreError(Exception):
    """A key file is missing, malformed, too widely readable, or would be overwritten."""


def key_info(purpose: bytes, resource_id: str, version: int) -> bytes:
    """The derivation context of one resource key.

    ``"bidui key v1" || I2OSP(len(purpose), 1) || purpose || I2OSP(len(id), 2) || id``
    ``|| I2OSP(version, 4)``
    """
    identifier = resource_id.encode("utf-8")
    if not 0 < len(identifier) < 2**16:
        raise ValueError("resource id must be 1 to 65535 bytes")
    if not 0 <= version < 2**32:
        raise ValueError("key version must fit in 32 bits")
    return b"".join(
        (
            b"bidui key v1",
            len(purpose).to_bytes(1, "big"),
            purpose,
            len(identifier).to_bytes(2, "big"),
            identifier,
            version.to_bytes(4, "big"),
        )
    )


def write_secret_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path``, mode 0600, atomically; never replace a file unless ``overwrite``.

    The bytes go to a temporary file created with ``O_CREAT | O_EXCL`` and mode 0600 (so they are
    never readable by others, not even for a moment), which is then linked (no overwrite) or
    renamed (overwrite) into place.
    """
    directory = path.parent
    temporary = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise KeyStoreError(f"{path} already exists; refusing to overwrite it") from None
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def read_secret_file(path: Path, length: int = MASTER_SECRET_LENGTH) -> bytes:
    """The ``length`` bytes of the secret file ``path``; ``KeyStoreError`` if it is missing, not a
    regular file, readable by group or others, or of another length."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        # Point to the action that only adds what is missing, never to one that replaces keys.
        folder = path.parent.parent if path.parent.name == "keys" else "<node folder>"
        raise KeyStoreError(
            f"key file {path} does not exist: restore it from the node's backup, or run "
            f"`bidui provider init --dir {folder}`, which creates only the missing files"
        ) from None
    except OSError as exc:
        raise KeyStoreError(f"cannot open key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyStoreError(f"key file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise KeyStoreError(
                f"key file {path} is readable by group or others (mode {mode:04o}); "
                f"run `chmod 600 {path}`"
            )
        data = handle.read(length + 1)
    if len(data) != length:
        raise KeyStoreError(f"key file {path} holds {len(data)} bytes, expected exactly {length}")
    return data


def create_missing_keys(directory: str | os.PathLike[str]) -> tuple[Path, ...]:
    """Create whichever master secret file is missing (directory 0700, files 0600); return them.

    An existing file is never read or replaced, even when created by someone else meanwhile
    (``write_secret_file`` links without overwriting).
    """
    path = Path(directory)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = []
    for name in SECRET_FILES:
        if not (path / name).exists():
            write_secret_file(path / name, secrets.token_bytes(MASTER_SECRET_LENGTH))
            created.append(path / name)
    return tuple(created)


class NodeKeys:
    """The node's two master secrets and the resource keys derived from them.

    DO NOT SEND the OPRF private key to any party. The HMAC key of a resource goes only to
    requesters authorised for that resource (``GetHashKey``).
    """

    __slots__ = ("_cache", "_directory", "_hmac_master", "_oprf_seed")

    def __init__(self, directory: Path, oprf_seed: bytes, hmac_master: bytes) -> None:
        if len(oprf_seed) != MASTER_SECRET_LENGTH or len(hmac_master) != MASTER_SECRET_LENGTH:
            raise KeyStoreError(f"master secrets must be {MASTER_SECRET_LENGTH} bytes each")
        self._directory = directory
        self._oprf_seed = bytes(oprf_seed)
        self._hmac_master = bytes(hmac_master)
        self._cache: dict[tuple[str, int, oprf.Mode], tuple[bytes, bytes]] = {}

    @property
    def directory(self) -> Path:
        return self._directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> NodeKeys:
        """Read ``oprf_seed`` and ``hmac_master``; raises ``KeyStoreError`` saying what to fix."""
        path = Path(directory)
        return cls(
            path,
            read_secret_file(path / OPRF_SEED_FILE),
            read_secret_file(path / HMAC_MASTER_FILE),
        )

    @classmethod
    def generate(cls, directory: str | os.PathLike[str], *, overwrite: bool = False) -> NodeKeys:
        """Create fresh master secrets (directory 0700, files 0600).

        Refuses (``KeyStoreError``) when a key file exists, unless ``overwrite``: replacing the keys
        invalidates every index and every requester's cached public key.
        """
        path = Path(directory)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        existing = [
            path / name for name in (OPRF_SEED_FILE, HMAC_MASTER_FILE) if (path / name).exists()
        ]
        if existing and not overwrite:
            names = ", ".join(str(p) for p in existing)
            raise KeyStoreError(
                f"{names} already exist; refusing to overwrite keys (replacing them is "
                "`bidui provider keys rotate`, which says what it invalidates)"
            )
        oprf_seed = secrets.token_bytes(MASTER_SECRET_LENGTH)
        hmac_master = secrets.token_bytes(MASTER_SECRET_LENGTH)
        write_secret_file(path / OPRF_SEED_FILE, oprf_seed, overwrite=overwrite)
        write_secret_file(path / HMAC_MASTER_FILE, hmac_master, overwrite=overwrite)
        return cls(path, oprf_seed, hmac_master)

    def oprf_key_pair(self, resource_id: str, version: int, mode: oprf.Mode) -> tuple[bytes, bytes]:
        """(private key, public key) of ``mode`` (OPRF or VOPRF) for ``version`` (RFC 9497
        DeriveKeyPair with that mode: each mode has its own key)."""
        mode = oprf.Mode(mode)
        cached = self._cache.get((resource_id, version, mode))
        if cached is None:
            info = key_info(_OPRF_PURPOSE, resource_id, version)
            cached = oprf.derive_key_pair(self._oprf_seed, info, mode)
            self._cache[(resource_id, version, mode)] = cached
        return cached

    def oprf_public_key(self, resource_id: str, version: int, mode: oprf.Mode) -> bytes:
        return self.oprf_key_pair(resource_id, version, mode)[1]

    def hmac_key(self, resource_id: str, version: int) -> bytes:
        """The resource's hashed-mode HMAC-SHA-256 key for ``version`` (HKDF-SHA256)."""
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=HMAC_KEY_LENGTH,
            salt=None,
            info=key_info(_HMAC_PURPOSE, resource_id, version),
        )
        return hkdf.derive(self._hmac_master)

    def payload_digest_key(self) -> bytes:
        """The key of the audit records' payload digests (HKDF-SHA256 from the HMAC master): a
        digest of a request's tags is useless to whoever holds an export without it, though any
        department may hold a resource's hashed-mode key."""
        hkdf = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"bidui audit payload digest v1"
        )
        return hkdf.derive(self._hmac_master)

    def __repr__(self) -> str:
        return f"NodeKeys(directory={str(self._directory)!r}, secrets=<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("NodeKeys holds secrets and cannot be pickled")
