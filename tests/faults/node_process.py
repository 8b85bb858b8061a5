"""``bidui provider serve`` in a process of its own, to be SIGTERMed or killed -9 like an
operator (or the kernel) would.

The node's directory is built like tests/integration's (``build_node_dir``: ``init``, synthetic
residents, indexes loaded) with its audit log on the test's PostgreSQL; ``NodeProcess.start``
returns once the node prints that it is serving. Its output goes to a file beside the node.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import REQUESTER, build_node_dir

__all__ = ["NodeDir", "NodeProcess", "make_node_dir", "port_is_free"]


@dataclass(frozen=True)
class NodeDir:
    directory: Path
    config_path: Path
    audit_url: str
    residents: list[tuple[str, str, str]]
    absent: list[tuple[str, str, str]]

    @property
    def ca_cert(self) -> Path:
        return self.directory / "pki" / "ca.pem"

    @property
    def client_cert(self) -> Path:
        return self.directory / "pki" / "clients" / f"{REQUESTER}.pem"

    @property
    def client_key(self) -> Path:
        return self.directory / "pki" / "clients" / f"{REQUESTER}.key"


def make_node_dir(
    directory: Path, audit_url: str, *, session_seconds: int | None = None
) -> NodeDir:
    """A node directory ready to serve; ``session_seconds`` sets ``blinded_session_seconds``."""
    config_path, residents, absent = build_node_dir(directory, audit_url=audit_url)
    if session_seconds is not None:
        text = config_path.read_text(encoding="utf-8")
        text, changed = re.subn(
            r"(?m)^blinded_session_seconds = \d+",
            f"blinded_session_seconds = {session_seconds}",
            text,
        )
        assert changed == 1, "node.toml no longer has a blinded_session_seconds line"
        config_path.write_text(text, encoding="utf-8")
    return NodeDir(directory, config_path, audit_url, residents, absent)


def _bidui() -> list[str]:
    script = Path(sys.executable).parent / "bidui"
    if script.is_file():
        return [str(script)]
    found = shutil.which("bidui")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from bidui_cli.main import main; sys.exit(main())"]


def port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:``port`` and a new server can listen there (connections the
    old one closed may linger in TIME_WAIT: servers bind with SO_REUSEADDR, as grpc does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.settimeout(2)
        if client.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
        return True


class NodeProcess:
    """One ``bidui provider serve`` process on 127.0.0.1:``port``."""

    def __init__(
        self,
        node: NodeDir,
        port: int,
        name: str,
        *args: str,
        open_files: tuple[int, int] | None = None,
    ) -> None:
        self.node = node
        self.port = port
        self.args = args  # more ``serve`` options, e.g. ``--workers 2``
        self.open_files = open_files  # (soft, hard) RLIMIT_NOFILE it starts with, as systemd sets
        self.log = node.directory / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"localhost:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait until it serves; returns how long that took."""
        argv = [
            *_bidui(),
            "provider",
            "serve",
            "--config",
            str(self.node.config_path),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--metrics-listen",
            "127.0.0.1:0",
            "--grace",
            "10",
            *self.args,
        ]
        started = time.monotonic()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=self._limit_open_files if self.open_files else None,
            )
        ready = f"serving on port {self.port}"
        while time.monotonic() < started + timeout:
            if ready in self.output():
                return time.monotonic() - started
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the node exited with {self.process.returncode}:\n{self.output()}"
                )
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"the node did not serve within {timeout} s:\n{self.output()}")

    def _limit_open_files(self) -> None:  # in the child, before exec
        assert self.open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, self.open_files)

    def output(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM; returns the exit status once it has exited."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def signal(self, number: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL (kill -9), and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def close(self) -> None:
        """Leave no process behind (teardown)."""
        self.kill()
