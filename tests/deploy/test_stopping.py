"""The launcher's stop machinery on its own: signals become `Interrupted`, and `down()` meets its deadline."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.stopping import Interrupted, StopSignals
from deploy.supervisor import System

#: ignores SIGTERM and leaves a grandchild (like a gateway worker) in its process group
STUBBORN = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_signal_raises_interrupted_with_the_shell_exit_code() -> None:
    with StopSignals(), pytest.raises(Interrupted) as caught:
        signal.raise_signal(signal.SIGTERM)
        time.sleep(1)
    assert caught.value.exit_code == 143


def test_a_signal_waits_for_the_end_of_a_deferred_block_and_later_ones_are_ignored() -> None:
    done = []
    with StopSignals() as signals, pytest.raises(Interrupted) as caught:
        with signals.deferred():
            signal.raise_signal(signal.SIGINT)
            done.append("rest of the block")
        done.append("after the block")
    assert done == ["rest of the block"] and caught.value.exit_code == 130
    with StopSignals() as signals:
        signals.quiet()
        signal.raise_signal(signal.SIGINT)  # a second Ctrl-C while stopping: nothing raised
    assert signals.signum == signal.SIGINT


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_down_kills_what_ignores_sigterm_and_its_group_at_the_deadline(tmp_path: Path) -> None:
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    stubborn = subprocess.Popen([sys.executable, "-c", STUBBORN], start_new_session=True, stdout=subprocess.PIPE)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    grandchild = int(Path(f"/proc/{stubborn.pid}/task/{stubborn.pid}/children").read_text().split()[0])
    system = System(data_dir=tmp_path, procs={"tracing": polite, "gateway": stubborn})
    began = time.monotonic()
    killed = system.down(apps_within=1.0, nats_within=0.5)
    took = time.monotonic() - began
    assert killed == ["gateway"]
    assert 1.0 <= took < 2.0
    assert polite.returncode == -signal.SIGTERM and stubborn.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 2
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(grandchild)
