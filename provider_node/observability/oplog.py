"""The operations log's view of refused TLS handshakes, at a bounded rate.

A peer without a certificate from the node's CA is refused inside grpc's C core, in the TLS
handshake: Python never sees it, and it must never reach the audit log (an anonymous flood would
fill the tamper-evident log every department's comparisons live in). grpc's core reports each
refusal on its own log (``GRPC_VERBOSITY=INFO``, written to file descriptor 2), one line each and
at any rate. ``HandshakeFailureLog`` puts a pipe in front of descriptor 2 and reads it:

    grpc core ──fd 2──> pipe ──> reader thread ─┬─ "Handshake failed …"  counted per reason,
                                                │   summarised once per ``interval`` to the
                                                │   operations logger
                                                └─ anything else       passed on unchanged to
                                                                       the original stderr

so an operator sees "1,312 TLS handshakes refused in the last 10 s (no_certificate: 1,300, …)"
instead of a line per attempt, and Prometheus counts every one
(``bidui_tls_handshake_failures_total{reason}``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import threading
import time
from collections import Counter
from collections.abc import Callable

__all__ = ["HandshakeFailureLog", "ThrottledWarning", "handshake_failure_reason"]

_HANDSHAKE = re.compile(rb"[Hh]andshake (?:failed|timed out)")
_REASONS: tuple[tuple[bytes, str], ...] = (
    (b"PEER_DID_NOT_RETURN_A_CERTIFICATE", "no_certificate"),
    (b"CERTIFICATE_REQUIRED", "no_certificate"),
    (b"CERTIFICATE_VERIFY_FAILED", "certificate_not_trusted"),
    (b"UNKNOWN_CA", "certificate_not_trusted"),
    (b"CERTIFICATE_EXPIRED", "certificate_expired"),
    (b"BAD_CERTIFICATE", "bad_certificate"),
    (b"UNSUPPORTED_CERTIFICATE", "bad_certificate"),
    (b"timed out", "timeout"),
    (b"WRONG_VERSION_NUMBER", "not_tls"),
    (b"HTTP_REQUEST", "not_tls"),
)
#: Every value ``handshake_failure_reason`` can return: a bounded label set.
REASONS = (*sorted({label for _, label in _REASONS}), "other")


def handshake_failure_reason(line: bytes) -> str | None:
    """The bounded reason of a grpc core log line reporting a refused handshake, else None."""
    if not _HANDSHAKE.search(line):
        return None
    for marker, label in _REASONS:
        if marker in line:
            return label
    return "other"


class HandshakeFailureLog:
    """Reads descriptor 2 through a pipe from ``start`` to ``stop``; one instance per process."""

    def __init__(
        self,
        logger: logging.Logger,
        count: Callable[[str], None],
        *,
        interval: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._count = count
        self._interval = interval
        self._monotonic = monotonic
        self._pending: Counter[str] = Counter()
        self._window_start = monotonic()
        self._original_fd: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Ask grpc's core for its handshake reports and put the pipe in front of fd 2.

        Call before the first grpc server or channel is made: grpc reads its verbosity then.
        """
        os.environ.setdefault("GRPC_VERBOSITY", "INFO")
        read_end, write_end = os.pipe()
        self._original_fd = os.dup(2)
        os.dup2(write_end, 2)
        os.close(write_end)
        self._thread = threading.Thread(
            target=self._run, args=(read_end,), name="bidui-grpc-log", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Give fd 2 back to the original stderr and report what is still pending."""
        if self._original_fd is None:
            return
        os.dup2(self._original_fd, 2)  # the pipe's last writer closes: the reader sees EOF
        if self._thread is not None:
            self._thread.join(timeout=5)
        os.close(self._original_fd)
        self._original_fd = None
        self._flush()

    def _run(self, read_end: int) -> None:
        buffered = b""
        try:
            while True:
                # Wake at least once an interval, so a burst followed by silence is reported.
                ready, _, _ = select.select([read_end], [], [], self._interval)
                if not ready:
                    self._flush_if_due()
                    continue
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    self.feed(line + b"\n")
            if buffered:
                self.feed(buffered)
        finally:
            os.close(read_end)

    def feed(self, line: bytes) -> None:
        """One line of descriptor 2: counted and summarised, or passed on unchanged."""
        reason = handshake_failure_reason(line)
        if reason is None:
            if self._original_fd is not None:
                with contextlib.suppress(OSError):
                    os.write(self._original_fd, line)
            return
        self._count(reason)
        self._pending[reason] += 1
        self._flush_if_due()

    def _flush_if_due(self) -> None:
        if self._monotonic() - self._window_start >= self._interval:
            self._flush()

    def _flush(self) -> None:
        total = sum(self._pending.values())
        if total:
            parts = ", ".join(f"{reason}: {n:,}" for reason, n in self._pending.most_common())
            elapsed = self._monotonic() - self._window_start
            self._logger.warning(
                "%s TLS handshakes refused in the last %.0f s (%s); such peers reach no RPC "
                "and no audit record",
                f"{total:,}",
                max(elapsed, self._interval),
                parts,
            )
        self._pending.clear()
        self._window_start = self._monotonic()


class ThrottledWarning:
    """A warning logged at most once per ``interval``, saying how many were held back meanwhile:
    an operator sees that the store is failing without a line per failed request."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._monotonic = monotonic
        self._last: float | None = None
        self._held = 0
        self._lock = threading.Lock()

    def warn(self, message: str) -> None:
        with self._lock:
            now = self._monotonic()
            if self._last is not None and now - self._last < self._interval:
                self._held += 1
                return
            held, self._held, self._last = self._held, 0, now
        suffix = f" ({held} more like it in the last {self._interval:.0f} s)" if held else ""
        self._logger.warning("%s%s", message, suffix)
