"""Start, watch and stop the whole system on one machine: nats-server, four services, the gateway."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deploy.components import COMPONENTS, ROOT, SERVICES
from deploy.nats_auth import NatsUsers
from deploy.natsd import require_free, start_nats
from shared.settings import DEFAULT_PORTS


@dataclass
class System:
    """A running system's processes and where they listen."""

    data_dir: Path
    nats_port: int = 4233
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    env: dict[str, str] = field(default_factory=dict)
    nats_users: NatsUsers = field(default_factory=NatsUsers)  # one user per service; anonymous refused
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

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
        return env

    def check_ports(self) -> None:
        """Fail clearly, before starting anything, if a needed port is taken."""
        require_free(self.nats_port, "the embedded nats-server")
        for name in COMPONENTS:
            require_free(self.ports[name], f"the {name}")

    def start_nats(self) -> None:
        """Start the broker with its store under the data dir."""
        self.procs["nats"] = start_nats(self.data_dir / "nats", self.nats_port, log_file=self.logs / "nats.log",
                                       authorization=self.nats_users.config())

    def start(self, name: str) -> subprocess.Popen:
        """Start one component as its own process (`jiaozhi up --target NAME`)."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "up", "--target", name], cwd=ROOT, env=self.env_for(name),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
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

    def down(self) -> None:
        """Stop the gateway, then the services, then the broker; politely, then firmly."""
        order = ["gateway", *SERVICES, "nats"]
        for name in order:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def crashed(self) -> list[str]:
        """Components whose process has ended."""
        return [name for name, proc in self.procs.items() if proc.poll() is not None]
