"""`jiaozhi up` as a child process of a test, and what is left of it afterwards."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy.components import ROOT
from deploy.natsd import port_is_free


@dataclass
class Launcher:
    """`jiaozhi up` as a child process, its output collected as it comes."""

    proc: subprocess.Popen
    data_dir: Path
    ports: tuple[int, ...]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_output(self, text: str, timeout: float) -> None:
        """Until the launcher has printed `text` (it must not exit before)."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.proc.poll() is None, f"launcher exited early:\n{self.output}"
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {text!r} in {timeout}s:\n{self.output[-3000:]}")
            time.sleep(0.1)

    def interrupt(self, sig: int = signal.SIGINT, timeout: float = 60) -> float:
        """Send `sig` and wait for the launcher to exit; the seconds that took."""
        sent = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        took = time.monotonic() - sent
        self.reader.join(timeout=10)
        return took

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.interrupt()
        return self.output

    def processes(self) -> list[int]:
        """Live processes (the launcher, nats-server, components, gateway workers) of this data dir."""
        return processes_with(f"JIAOZHI_DATA_DIR={self.data_dir}")

    def taken_ports(self) -> list[int]:
        return [port for port in self.ports if not port_is_free(port)]


def start_launcher(data_dir: Path, base: int, nats_port: int, *args: str, **env: str) -> Launcher:
    data_dir = data_dir.resolve()  # what the components see (System.env_for) and the launcher too
    environ = dict(os.environ, JIAOZHI_DATA_DIR=str(data_dir), JIAOZHI_BASE_PORT=str(base),
                   JIAOZHI_EMBEDDED_NATS_PORT=str(nats_port), COLUMNS="200", **env)
    environ.pop("JIAOZHI_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "up", *args], cwd=ROOT, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return Launcher(proc, data_dir, (*range(base, base + 5), nats_port))


def processes_with(entry: str) -> list[int]:
    """Pids of live (not zombie) processes whose environment holds `entry` (NAME=value)."""
    wanted, found = entry.encode(), []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if wanted not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # ended meanwhile, or not ours
            continue
        if state != "Z":
            found.append(int(proc.name))
    return found
