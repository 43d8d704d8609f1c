"""A private PostgreSQL cluster for one test module: initdb into a temporary folder, a free port, trust auth.

System tests that restart PostgreSQL mid-stream restart this one, never a server others share.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deploy.natsd import free_port

BIN = Path(os.environ.get("JIAOZHI_PG_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass
class PrivatePostgres:
    """A running cluster of our own: `url` for the system, `restart` to take it away and back."""

    data: Path
    port: int
    user: str | None  # the OS user the server runs as when we are root (PostgreSQL refuses root)

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(BIN / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/jiaozhi"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run("pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(self.data / "server.log"), "-o", options)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))

    def restart(self, mode: str = "immediate", down_s: float = 1.0) -> None:
        """Stop (`immediate` is a crash: no checkpoint, connections cut), stay away `down_s`, start again."""
        self.stop(mode)
        time.sleep(down_s)
        self.start()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """initdb, start, create database `jiaozhi`; stopped and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="jz-pg-"))
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    cluster = PrivatePostgres(folder / "data", free_port(), user)
    try:
        cluster._run("initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres", "--no-sync", timeout=120)
        cluster.start()
        subprocess.run([str(BIN / "createdb"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
                        "jiaozhi"], check=True, capture_output=True, timeout=30)
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            cluster.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
