"""`jiaozhi up`: run the whole system in the foreground until Ctrl-C or SIGTERM, and stop it whole.

A signal is honoured at every moment (starting, waiting for readiness, loading the demo, running):
every component is stopped within 10 s (`System.down`), a short message and no traceback are printed,
and the exit code is 128 + the signal: 130 after Ctrl-C (SIGINT), 143 after SIGTERM.
"""
from __future__ import annotations

import time

import httpx
from rich.console import Console
from rich.table import Table

from deploy.components import COMPONENTS
from deploy.natsd import PortTaken
from deploy.stopping import Interrupted, StopSignals
from deploy.supervisor import APPS_STOP_S, NATS_STOP_S, System

SIGNAL_NAMES = {130: "Ctrl-C", 143: "SIGTERM"}


def run_system(system: System, *, demo: bool, console: Console) -> int:
    """Start, optionally load the demo district, watch until a signal; returns the exit code."""
    with StopSignals() as signals:
        system.guard = signals.deferred
        code = 0
        try:
            code = _start(system, console)
            if code:
                return code
            if demo:
                _load_demo(system, console)
            _print_running(system, console)
            _watch(system, console)
        except Interrupted as exc:
            signals.quiet()
            code = exc.exit_code
            console.print(f"{SIGNAL_NAMES.get(code, exc)}: 正在停止 stopping all components "
                          f"(at most {APPS_STOP_S + NATS_STOP_S:.0f} s)…")
        finally:
            signals.quiet()
            killed = system.down()
            if killed:
                console.print(f"[yellow]killed after the stop deadline:[/yellow] {', '.join(killed)}")
        console.print(f"已停止 stopped; data kept in {system.data_dir}")
        return code


def _start(system: System, console: Console) -> int:
    """Start everything and wait until it is ready; an exit code other than 0 if it could not."""
    try:
        with console.status("starting nats-server, four services and the gateway…"):
            system.up()
    except PortTaken as exc:
        console.print(f"[red]cannot start:[/red] {exc}")
        return 2
    except (RuntimeError, TimeoutError, OSError) as exc:
        console.print(f"[red]start failed:[/red] {exc}")
        return 1
    return 0


def _load_demo(system: System, console: Console) -> None:
    """Load the demo district; a failure leaves the system running (`jiaozhi demo` tries again)."""
    from deploy.demo import load_demo

    console.print("loading the demo district… (Ctrl-C stops everything)")
    try:
        load_demo(system.url("gateway"), console=console)
    except (httpx.HTTPError, RuntimeError) as exc:
        console.print(f"[yellow]demo district not loaded:[/yellow] {type(exc).__name__}: {exc}; "
                      "the system keeps running (`jiaozhi demo` loads it)")


def _watch(system: System, console: Console) -> None:
    """Restart any component that ends, until a signal interrupts."""
    while True:
        for name in system.crashed():
            if name == "nats":
                console.print("[yellow]nats-server ended; restarting it[/yellow]")
                system.start_nats()
            else:
                console.print(f"[yellow]{name} ended; restarting it (log: {system.logs / name}.log)[/yellow]")
                system.start(name)
        time.sleep(0.5)


def _print_running(system: System, console: Console) -> None:
    table = Table(title="jiaozhi is running (Ctrl-C stops it)")
    table.add_column("component")
    table.add_column("address")
    for name in COMPONENTS:
        table.add_row(name, system.url(name))
    table.add_row("nats-server", f"nats://127.0.0.1:{system.nats_port}")
    console.print(table)
    console.print(f"logs: {system.logs}   API docs: {system.url('gateway')}/docs")
