"""Replacing the node's CA or its master secrets: explicit actions that say what they invalidate.

``bidui provider init`` never replaces a file (bootstrap.py). Replacing one of these is a decision
with consequences for other departments, so each is its own action, planned first (every check,
and the list of what it invalidates, before any file changes) and carried out only when the
operator confirms:

```
CaRotation    pki/ca.pem, ca.key, node.pem, node.key   new CA, new server certificate for the
                                                        same names; client certificates retired
KeyRotation   keys/oprf_seed, hmac_master, node.toml   new master secrets; every resource's
                                                        key_version raised by one
```

Each replaced file is kept beside it as ``<name>.replaced-<UTC time>`` (a hard link to the old
file, so it keeps its content and mode; secrets are made 0600). The node must be restarted to use
the new files; a node running meanwhile keeps the old ones in memory.

Why a key rotation raises ``key_version``: the resource keys are derived from (master secret,
resource, version). New secrets under the same version would give departments that cached the old
hashed-mode key "not matched" for every record, silently. With the version raised, their next
request is refused ``FAILED_PRECONDITION`` and the SDK fetches the new key.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import secrets
import tomllib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from provider_node.config import MAX_KEY_VERSION, NodeConfig
from provider_node.identity import pki
from provider_node.identity.names import serial_hex
from provider_node.resources.keys import MASTER_SECRET_LENGTH, SECRET_FILES, write_secret_file
from provider_node.setup.bootstrap import SERVER_HOSTNAMES

__all__ = ["CaRotation", "KeyRotation", "Rotated", "Rotation", "RotationError"]

Clock = Callable[[], _dt.datetime]


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


class RotationError(Exception):
    """The rotation cannot be done safely as planned; nothing was changed."""


@dataclass(frozen=True)
class Rotated:
    """What a rotation did, each (file, backup) pair: files replaced by new ones, files retired
    (moved aside, no replacement), and the reason recorded in the audit log."""

    replaced: tuple[tuple[Path, Path], ...]
    retired: tuple[tuple[Path, Path], ...]
    audit_reason: str


class Rotation(ABC):
    """A planned rotation: constructing it checks everything; ``carry_out`` changes the files."""

    @property
    @abstractmethod
    def invalidates(self) -> tuple[str, ...]:
        """What stops working, one sentence per item, for the operator to read before confirming."""

    @abstractmethod
    def carry_out(self, clock: Clock = _now) -> Rotated:
        """Replace the files (each kept as a backup) and say what was done."""


def _stamp(clock: Clock) -> str:
    return clock().astimezone(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _check_backup_names(paths: list[Path], stamp: str) -> None:
    """Before anything changes: a second rotation within the same second would find its names
    taken half way through."""
    taken = [p for p in paths if p.with_name(f"{p.name}.replaced-{stamp}").exists()]
    if taken:
        raise RotationError(f"{taken[0]}.replaced-{stamp} exists; try again in a second")


def _backup(path: Path, stamp: str, *, secret: bool) -> Path:
    """Keep ``path`` as ``<name>.replaced-<stamp>``: a hard link, refused if the name is taken."""
    backup = path.with_name(f"{path.name}.replaced-{stamp}")
    os.link(path, backup)
    if secret:  # the old secret stays secret, whatever its mode was
        os.chmod(backup, 0o600)
    return backup


class CaRotation(Rotation):
    """Replace the development CA and the server certificate; retire the client certificates."""

    def __init__(self, config: NodeConfig) -> None:
        tls = config.tls
        self.department = config.node.department
        self.ca_dir = tls.ca_cert.parent
        self.ca_pair = (tls.ca_cert, self.ca_dir / "ca.key")
        self.server_pair = (tls.server_cert, tls.server_key)
        own_ca = tls.ca_key is not None and tls.ca_key != self.ca_pair[1]
        if (
            own_ca
            or tls.ca_cert.name != "ca.pem"
            or (tls.ca_cert.exists() and not self.ca_pair[1].exists())
        ):
            raise RotationError(
                f"{tls.ca_cert} is not a development CA made by `bidui provider init` (no ca.key "
                "beside a ca.pem): replace it with the PKI that issued it"
            )
        if tls.server_key != tls.server_cert.with_suffix(".key"):
            raise RotationError(
                f"tls.server_key {tls.server_key} is not beside tls.server_cert as "
                f"{tls.server_cert.with_suffix('.key').name}: issue the server certificate "
                "with your own PKI"
            )
        self.clients = tuple(
            (cert, cert.with_suffix(".key"))
            for cert in sorted((self.ca_dir / "clients").glob("*.pem"))
        )
        self.hostnames = _server_hostnames(tls.server_cert)

    @property
    def departments(self) -> tuple[str, ...]:
        return tuple(cert.stem for cert, _ in self.clients)

    @property
    def invalidates(self) -> tuple[str, ...]:
        held = ", ".join(self.departments) or "none found in pki/clients"
        return (
            "every client certificate the current CA issued: no requesting department can "
            f"connect until it holds one from the new CA (issued here: {held})",
            f"the CA certificate departments were given ({self.ca_pair[0].name}): they need the "
            "new one to trust the node",
            f"the server certificate ({self.server_pair[0].name}): a new one for "
            f"{', '.join(self.hostnames)}, signed by the new CA",
        )

    def carry_out(self, clock: Clock = _now) -> Rotated:
        stamp = _stamp(clock)
        existing = [p for p in (*self.ca_pair, *self.server_pair) if p.exists()]
        _check_backup_names([*existing, *(p for pair in self.clients for p in pair)], stamp)
        replaced = [(path, _backup(path, stamp, secret=path.suffix == ".key")) for path in existing]
        ca = pki.create_ca(self.ca_dir, f"bidui development CA ({self.department})", overwrite=True)
        cert = self.server_pair[0]
        pki.issue_server_cert(ca, cert.parent, self.hostnames, name=cert.stem, overwrite=True)
        # Certificates of the old CA no longer verify: moved aside, so that `init --client`
        # issues each department a new one.
        retired = []
        for path in (p for pair in self.clients for p in pair if p.exists()):
            retired.append((path, _backup(path, stamp, secret=path.suffix == ".key")))
            path.unlink()
        reason = (
            f"CA and server certificate replaced (new CA serial {serial_hex(ca.certificate)}); "
            f"{len(self.clients)} client certificates retired"
        )
        return Rotated(tuple(replaced), tuple(retired), reason)


def _server_hostnames(server_cert: Path) -> tuple[str, ...]:
    """The names the current server certificate is valid for: the new one keeps them."""
    try:
        certificate = x509.load_pem_x509_certificate(server_cert.read_bytes())
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return SERVER_HOSTNAMES
    names = [str(n) for n in sans.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    return tuple(names) or SERVER_HOSTNAMES


class KeyRotation(Rotation):
    """Replace both master secrets and raise every resource's ``key_version`` by one."""

    def __init__(self, config: NodeConfig) -> None:
        self.config_path = config.path
        self.keys = tuple(config.keys.dir / name for name in SECRET_FILES)
        self.versions = {r.id: r.key_version for r in config.resources}
        at_max = [rid for rid, version in self.versions.items() if version >= MAX_KEY_VERSION]
        if at_max:
            raise RotationError(f"key_version of {', '.join(at_max)} is already the largest")
        text = self.config_path.read_text(encoding="utf-8")
        self.new_text = raise_key_versions(text)
        if _resources(self.new_text) != _resources(text, raised=True):
            raise RotationError(
                f"cannot raise key_version in {self.config_path} line by line (resources not "
                "written as [[resources]] tables?): raise it by hand, run `bidui provider load`; "
                "the master secrets are unchanged"
            )

    @property
    def invalidates(self) -> tuple[str, ...]:
        raised = ", ".join(f"{rid} {v} -> {v + 1}" for rid, v in self.versions.items())
        return (
            "the match indexes of every resource: `bidui provider serve` refuses to start until "
            "`bidui provider load` rebuilds them under the new keys",
            "the hashed-mode keys requesting departments hold and the OPRF public keys they "
            f"cached: key_version rises ({raised or 'no resources'}), so their next request is "
            "refused FAILED_PRECONDITION and the SDK fetches the new keys",
            f"{' and '.join(p.name for p in self.keys)} themselves: the old secrets are kept "
            "only in the backups",
        )

    def carry_out(self, clock: Clock = _now) -> Rotated:
        stamp = _stamp(clock)
        _check_backup_names([self.config_path, *self.keys], stamp)
        # node.toml first: a raised version under the old secrets is a routine rotation, whereas
        # new secrets under the old version would be the silent mismatch this class prevents.
        replaced = [(self.config_path, _backup(self.config_path, stamp, secret=False))]
        _replace_text(self.config_path, self.new_text)
        for path in self.keys:
            if path.exists():
                replaced.append((path, _backup(path, stamp, secret=True)))
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_secret_file(path, secrets.token_bytes(MASTER_SECRET_LENGTH), overwrite=True)
        raised = ", ".join(f"{rid} {v} -> {v + 1}" for rid, v in self.versions.items())
        reason = f"master secrets replaced; key_version raised: {raised or 'no resources'}"
        return Rotated(tuple(replaced), (), reason)


_RESOURCES_HEADER = re.compile(r"\s*\[\[\s*resources\s*\]\]\s*(#.*)?")
_TABLE_HEADER = re.compile(r"\s*\[")
_KEY_VERSION = re.compile(r"(\s*key_version\s*=\s*)(\d+)(.*)", re.DOTALL)


def raise_key_versions(text: str) -> str:
    """``text`` with the ``key_version`` of each ``[[resources]]`` table raised by one.

    A table without one (version 1 by default) gets ``key_version = 2`` after its header. Only
    those lines change: the operator's comments and layout stay as they are.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    in_resource = found = False
    for line in lines:
        if _TABLE_HEADER.match(line):
            if in_resource and not found:
                _insert_after_header(out, "key_version = 2\n")
            in_resource, found = bool(_RESOURCES_HEADER.fullmatch(line.rstrip("\r\n"))), False
        elif in_resource and not found and (match := _KEY_VERSION.fullmatch(line)):
            line = f"{match[1]}{int(match[2]) + 1}{match[3]}"
            found = True
        out.append(line)
    if in_resource and not found:
        _insert_after_header(out, "key_version = 2\n")
    return "".join(out)


def _insert_after_header(out: list[str], line: str) -> None:
    header = max(i for i, text in enumerate(out) if _RESOURCES_HEADER.fullmatch(text.rstrip()))
    out.insert(header + 1, line)


def _resources(text: str, *, raised: bool = False) -> list[dict[str, Any]] | None:
    """The ``resources`` of a TOML text (their key_version raised by one if asked)."""
    try:
        resources = tomllib.loads(text).get("resources")
    except tomllib.TOMLDecodeError:
        return None
    if not isinstance(resources, list):
        return None
    if raised:
        resources = [{**r, "key_version": r.get("key_version", 1) + 1} for r in resources]
    return resources


def _replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, with the mode the file had."""
    mode = path.stat().st_mode & 0o777
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
