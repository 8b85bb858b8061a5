"""Open-file descriptors: the node raises its soft limit to the hard one as it starts.

Every TCP connection holds a descriptor from accept until it closes, and a peer without a client
certificate that stops after its ClientHello holds one until the handshake times out
(``[transport] handshake_timeout_seconds``). Under systemd's default soft limit, 1,024, a
thousand such peers leave the node no descriptor to accept a department's new connection with:
the kernel keeps that connection waiting until one is freed (``bench/flood.py --stall``: a new
connection and health check took 194 ms at the median and 4.2 s at worst under 1,100 stalled
peers at a soft limit of 1,024; 2.2 ms and 16 ms at 20,000). The hard limit is the
operator's (``LimitNOFILE=`` in a systemd unit, ``ulimit -Hn``); the soft one is the process's own
to raise, as Go's runtime does for every program and nginx does with ``worker_rlimit_nofile``.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LOW_OPEN_FILES", "OpenFilesLimit", "raise_open_files_limit"]

#: Below this many descriptors ``serve`` warns at start. Departments need a few each; the margin
#: is for peers without a certificate, which the host firewall should bound per source address.
LOW_OPEN_FILES = 8192

# Linux refuses a descriptor limit above fs.nr_open (1,048,576 by default), so an "unlimited"
# hard limit is taken as that.
_NR_OPEN_DEFAULT = 1_048_576

Limits = tuple[int, int]


@dataclass(frozen=True)
class OpenFilesLimit:
    """The soft limit before and after the raise, and the hard limit over it."""

    before: int
    now: int
    hard: int

    @property
    def raised(self) -> bool:
        return self.now > self.before

    @property
    def low(self) -> bool:
        return self.now < LOW_OPEN_FILES


def raise_open_files_limit(
    *,
    getrlimit: Callable[[int], Limits] = resource.getrlimit,
    setrlimit: Callable[[int, Limits], None] = resource.setrlimit,
) -> OpenFilesLimit:
    """Raise ``RLIMIT_NOFILE``'s soft limit to its hard limit; a refusal leaves it as it was."""
    soft, hard = getrlimit(resource.RLIMIT_NOFILE)
    ceiling = _NR_OPEN_DEFAULT if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= ceiling:
        return OpenFilesLimit(soft, soft, hard)
    try:
        setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    except (OSError, ValueError):  # a kernel whose nr_open is below the hard limit
        return OpenFilesLimit(soft, soft, hard)
    return OpenFilesLimit(soft, ceiling, hard)
