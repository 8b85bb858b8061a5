"""A PostgreSQL server of the test's own, in a temporary directory, to break on purpose.

Never the shared server on 5432: ``ThrowawayPostgres.start`` runs ``initdb`` into a fresh
directory under /tmp, then ``postgres`` on a free loopback port with its socket in that directory
and trust authentication. PostgreSQL refuses to run as root: as root every PostgreSQL binary runs
as the ``postgres`` user through ``runuser -u postgres --`` (the directory is handed to that
user). Where the binaries, ``runuser`` or the user are missing the test is skipped, saying which.

What an operator's worst day does to a database server, as methods:

    freeze()   SIGSTOP the postmaster and every process it forked (a hung VM or disk)
    thaw()     SIGCONT them all
    stop()     pg_ctl stop (``mode="immediate"``: no shutdown checkpoint, crash recovery at start)
    start()    (again) on the same port and directory
    kill()     SIGKILL the postmaster and its children

``close()`` always leaves nothing behind: thaws, stops, kills what is left, removes the directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text

__all__ = ["ThrowawayPostgres", "free_port", "postgres_bin_dir", "throwaway_postgres"]

_BIN_GLOBS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin")
_RUN_AS = "postgres"


def postgres_bin_dir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres (15 preferred), or None."""
    for pattern in _BIN_GLOBS:
        for found in sorted(glob.glob(pattern), reverse=True):
            folder = Path(found)
            if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
                return folder
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl") and shutil.which("postgres"):
        return Path(on_path).resolve().parent
    return None


def _missing() -> str | None:
    """Why a throwaway PostgreSQL cannot be run here, or None."""
    if postgres_bin_dir() is None:
        return (
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in "
            "/usr/lib/postgresql/*/bin or on PATH: fault tests on a throwaway PostgreSQL skipped"
        )
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return (
                "running as root but runuser is missing (PostgreSQL refuses to run as root): "
                "fault tests on a throwaway PostgreSQL skipped"
            )
        try:
            pwd.getpwnam(_RUN_AS)
        except KeyError:
            return (
                f"running as root but there is no {_RUN_AS!r} user to run PostgreSQL as: "
                "fault tests on a throwaway PostgreSQL skipped"
            )
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ThrowawayPostgres:
    """One PostgreSQL cluster in a temporary directory, listening on 127.0.0.1:``port``."""

    def __init__(self) -> None:
        reason = _missing()
        if reason is not None:
            pytest.skip(reason)
        bin_dir = postgres_bin_dir()
        assert bin_dir is not None
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="bidui-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            user = pwd.getpwnam(_RUN_AS)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        os.chmod(self.root, 0o700)
        try:
            self._initdb()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    # -- the server's life -------------------------------------------------------------------

    def _command(self, program: str, *args: str) -> list[str]:
        argv = [str(self.bin_dir / program), *args]
        return ["runuser", "-u", _RUN_AS, "--", *argv] if self._as_root else argv

    def _run(self, program: str, *args: str, timeout: float = 60.0) -> None:
        done = subprocess.run(
            self._command(program, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}"
                f"{done.stderr}\n{self.log_tail()}"
            )

    def _initdb(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        """Start (or start again) on the same port; returns once it accepts connections."""
        options = " ".join(
            (
                f"-p {self.port}",
                f"-k {self.root}",
                "-c listen_addresses=127.0.0.1",
                "-c max_connections=200",
                "-c shared_buffers=32MB",
            )
        )
        self._run(
            "pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
            "-o", options,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m mode`` (smart, fast or immediate); waits until it is down."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")

    def ensure_running(self) -> None:
        """Thawed and started, whatever state a test left it in."""
        if self.postmaster() is None:
            self.start()
        else:
            self.thaw()

    def postmaster(self) -> psutil.Process | None:
        """The running postmaster of this cluster (from its postmaster.pid), or None."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            process = psutil.Process(pid)
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                return process
        except (OSError, ValueError, IndexError, psutil.Error):
            pass
        return None

    def processes(self) -> list[psutil.Process]:
        """The postmaster and every process it forked (backends, checkpointer, walwriter…)."""
        main = self.postmaster()
        if main is None:
            return []
        try:
            return [main, *main.children(recursive=True)]
        except psutil.Error:
            return [main]

    def _signal_all(self, number: signal.Signals) -> int:
        sent = 0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                process.send_signal(number)
                sent += 1
        return sent

    def freeze(self) -> int:
        """SIGSTOP the postmaster first (so it forks no more), then everything it forked."""
        main = self.postmaster()
        if main is None:
            raise RuntimeError("the throwaway PostgreSQL is not running")
        main.send_signal(signal.SIGSTOP)
        stopped = {main.pid}
        for _ in range(3):  # a child forked just before the postmaster stopped
            for child in main.children(recursive=True):
                if child.pid not in stopped:
                    with contextlib.suppress(psutil.Error):
                        child.send_signal(signal.SIGSTOP)
                        stopped.add(child.pid)
            time.sleep(0.05)
        return len(stopped)

    def thaw(self) -> int:
        """SIGCONT every process of the cluster (children first, then the postmaster)."""
        processes = self.processes()
        for process in reversed(processes):
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGCONT)
        return len(processes)

    def kill(self) -> None:
        """SIGKILL the postmaster and every process it forked."""
        self._signal_all(signal.SIGKILL)

    def close(self) -> None:
        """Leave nothing behind, whatever state the server was left in."""
        try:
            if self.postmaster() is not None:
                self.thaw()
                try:
                    self.stop("immediate")
                except Exception:
                    self.kill()
            deadline = time.monotonic() + 10
            while self.processes() and time.monotonic() < deadline:
                self.kill()
                time.sleep(0.1)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- using it ----------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A started throwaway PostgreSQL, always removed afterwards (skips where it cannot run)."""
    server = ThrowawayPostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()
