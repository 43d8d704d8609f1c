"""Start, watch and stop the whole system on one machine: nats-server, four services, the gateway.

Every child runs in its own session (a terminal's Ctrl-C reaches only the launcher, which stops them in
order) and gets SIGTERM from the kernel if the launcher dies (deploy/stopping.py; the kernel ties this to
the thread that started the child, so start and restart components from the main thread). `down()` is
bounded: SIGTERM to the five components at once, SIGKILL to whatever is left of them after `APPS_STOP_S`, then
the same for nats-server within `NATS_STOP_S`; the whole stop takes under 10 s.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deploy.components import COMPONENTS, ROOT, SERVICES
from deploy.nats_auth import NatsUsers
from deploy.natsd import require_free, spawn_nats, wait_listening
from deploy.stopping import die_with_parent
from deploy.token_keys import PRIVATE_VAR, TokenKeys
from shared.settings import DEFAULT_PORTS

#: how long the gateway and services get, together, to end after SIGTERM (they bound their own drain
#: and lifespan shutdown to less than this), and then nats-server; SIGKILL after each
APPS_STOP_S = 7.5
NATS_STOP_S = 1.5


@dataclass
class System:
    """A running system's processes and where they listen."""

    data_dir: Path
    nats_port: int = 4233
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    env: dict[str, str] = field(default_factory=dict)
    nats_users: NatsUsers = field(default_factory=NatsUsers)  # one user per service; anonymous refused
    token_keys: TokenKeys | None = None  # the gateway's key pair; by default the data dir's (made on first use)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    #: wraps each process creation; the launcher passes StopSignals.deferred so a signal cannot come in between
    guard: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext

    @property
    def logs(self) -> Path:
        path = self.data_dir / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @classmethod
    def on_ports(cls, data_dir: Path, base_port: int, nats_port: int, **kw: object) -> System:
        """A system whose gateway listens on base_port and services on the next four ports."""
        ports = {name: base_port + i for i, name in enumerate(("gateway", *SERVICES))}
        return cls(data_dir=data_dir, nats_port=nats_port, ports=ports, **kw)  # type: ignore[arg-type]

    def url(self, name: str) -> str:
        """Base URL of a component."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def env_for(self, name: str) -> dict[str, str]:
        """The environment a component's process starts with."""
        env = dict(os.environ)
        env.update({
            "JIAOZHI_DATA_DIR": str(self.data_dir.resolve()),
            "JIAOZHI_NATS_URL": f"nats://127.0.0.1:{self.nats_port}",
            "JIAOZHI_PORT": str(self.ports[name]),
            "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
        })
        for service in SERVICES:
            env[f"JIAOZHI_{service.upper()}_URL"] = self.url(service)
        env.update(self.nats_users.env(name))
        env.update(self.env)
        env.pop(PRIVATE_VAR, None)  # whatever the launcher's own environment holds: only the gateway signs
        env.update(self.keys().env(name))
        return env

    def keys(self) -> TokenKeys:
        """The token keys (the data dir's unless set)."""
        if self.token_keys is None:
            self.token_keys = TokenKeys.for_data_dir(self.data_dir)
        return self.token_keys

    def check_ports(self) -> None:
        """Fail clearly, before starting anything, if a needed port is taken."""
        require_free(self.nats_port, "the embedded nats-server")
        for name in COMPONENTS:
            require_free(self.ports[name], f"the {name}")

    def start_nats(self) -> None:
        """Start the broker with its store under the data dir."""
        log = self.logs / "nats.log"
        with self.guard():
            self.procs["nats"] = spawn_nats(self.data_dir / "nats", self.nats_port, log_file=log, tied=True,
                                            authorization=self.nats_users.config())
        wait_listening(self.procs["nats"], self.nats_port, log_file=log)

    def start(self, name: str) -> subprocess.Popen:
        """Start one component as its own process (`jiaozhi up --target NAME`)."""
        with open(self.logs / f"{name}.log", "ab") as log, self.guard():
            proc = subprocess.Popen(
                [sys.executable, "-m", "deploy.cli", "up", "--target", name], cwd=ROOT, env=self.env_for(name),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - tiny, and set up before any thread needs a lock
            )
            self.procs[name] = proc
        return proc

    def wait_ready(self, name: str, timeout: float = 60.0) -> None:
        """Wait until the component answers /readyz with 200."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.logs / (name + '.log')}")
            try:
                response = httpx.get(self.url(name) + "/readyz", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = str(exc) or type(exc).__name__
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready after {timeout}s: {last}")

    def up(self, timeout: float = 60.0) -> None:
        """Start everything and wait until the gateway is ready."""
        self.check_ports()
        self.start_nats()
        for name in COMPONENTS:
            self.start(name)
        for name in COMPONENTS:
            self.wait_ready(name, timeout)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send a signal to one process and wait for it to end."""
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def restart(self, name: str, timeout: float = 60.0) -> None:
        """Start a stopped component again (nats included) and wait until it is ready."""
        if name == "nats":
            self.start_nats()
            return
        self.start(name)
        self.wait_ready(name, timeout)

    def down(self, apps_within: float = APPS_STOP_S, nats_within: float = NATS_STOP_S) -> list[str]:
        """Stop the gateway and services at once, then the broker; politely, then firmly. Returns what had
        to be killed."""
        killed = _stop([p for n, p in self.procs.items() if n != "nats"], apps_within)
        killed += _stop([p for n, p in self.procs.items() if n == "nats"], nats_within)
        return [name for name, proc in self.procs.items() if proc in killed]

    def crashed(self) -> list[str]:
        """Components whose process has ended."""
        return [name for name, proc in self.procs.items() if proc.poll() is not None]


def _stop(procs: list[subprocess.Popen], within: float) -> list[subprocess.Popen]:
    """SIGTERM to each, SIGKILL to the process group (a multi-worker gateway's workers too) of any
    still alive after `within` seconds; returns those killed."""
    alive = [p for p in procs if p.poll() is None]
    for proc in alive:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + within
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if p.poll() is None]
    for proc in alive:  # not reaped, so its pid is still its own; it leads its group, which holds what it started
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    for proc in alive:
        proc.wait()
    return alive
