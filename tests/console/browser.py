"""Driving the console in Debian's Chromium with Playwright: the system under test, the browser, the offline guard.

Never `playwright install`: the browser is the system's /usr/bin/chromium (with fonts-noto-cjk for Chinese).
"""
from __future__ import annotations

import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from deploy.natsd import free_port, free_port_block
from tests.e2e.launcher import Launcher, start_launcher

CHROMIUM = "/usr/bin/chromium"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
#: start + the calibrated demo district on a loaded 2-core machine (measured 60–70 s; generous for CI)
DEMO_LOADED_WITHIN_S = 300
VIEWPORT = {"width": 1600, "height": 1000}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}
CELLS = 26 * 8


def chromium_or_reason() -> str | None:
    """None when Chromium is there; otherwise why the browser tests cannot run."""
    if Path(CHROMIUM).exists() or shutil.which("chromium"):
        return None
    return f"{CHROMIUM} is missing (apt-get install chromium fonts-noto-cjk; .ci/run does it)"


@dataclass
class Running:
    """A whole system with the demo district, started by `jiaozhi up` on free ports."""

    launcher: Launcher
    gateway: str

    def token(self, username: str = "command") -> dict[str, str]:
        r = httpx.post(self.gateway + "/api/v1/auth/token",
                       data={"grant_type": "password", "username": username, "password": "demo"}, timeout=60)
        r.raise_for_status()
        return {"authorization": "Bearer " + r.json()["access_token"]}


def start_system(data_dir: Path) -> Running:
    """`jiaozhi up` with the demo, waited for until the demo district is loaded and the gateway ready."""
    base, nats_port = free_port_block(), free_port()
    launcher = start_launcher(data_dir, base, nats_port)
    gateway = f"http://127.0.0.1:{base}"
    deadline = time.monotonic() + DEMO_LOADED_WITHIN_S
    try:
        while time.monotonic() < deadline:
            assert launcher.proc.poll() is None, f"launcher exited early:\n{launcher.output}"
            if "demo district loaded" in launcher.output or "demo district already loaded" in launcher.output:
                try:
                    if httpx.get(gateway + "/readyz", timeout=2).status_code == 200:
                        return Running(launcher, gateway)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        raise TimeoutError(f"no demo district in {DEMO_LOADED_WITHIN_S}s:\n{launcher.output[-3000:]}")
    except BaseException:
        launcher.stop()
        raise


@dataclass
class Guard:
    """What a page tried that it must not: requests off this machine, script errors, CSP violations."""

    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def check(self) -> None:
        assert self.outside == [], f"the console tried to reach other machines: {self.outside}"
        assert self.errors == [], f"errors in the page: {self.errors}"


def guard(context) -> Guard:  # noqa: ANN001 - a playwright BrowserContext
    """Abort every request to a non-local address (and record it); record page errors and CSP violations."""
    seen = Guard()

    def route(r) -> None:  # noqa: ANN001
        host = urlsplit(r.request.url).hostname or ""
        if r.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            r.continue_()
        else:
            seen.outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)

    def on_page(page) -> None:  # noqa: ANN001
        page.on("pageerror", lambda exc: seen.errors.append(f"pageerror: {exc}"))
        page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" and (
            "Content Security Policy" in m.text or "Refused to" in m.text) else None)

    context.on("page", on_page)
    return seen


def launch(playwright):  # noqa: ANN001, ANN201
    """Debian's Chromium, headless (root in CI needs --no-sandbox)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"] if os.geteuid() == 0 else [])


def log_in(page, gateway: str, username: str = "command", password: str = "demo") -> None:  # noqa: ANN001
    """Through the login form, as a person does."""
    page.goto(gateway + "/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("header.top nav")


def board_drawn_ms(page, url: str) -> float:  # noqa: ANN001
    """Milliseconds from navigation start to the board's cells painted: the console marks `board-drawn` (a
    performance mark) in the effect that runs after they are on screen; the test checks they are all there."""
    page.goto("about:blank")  # a new document each time (a goto that only changes the #fragment would not load)
    page.goto(url)
    # (no wait_for_function: the console's CSP forbids the eval it would need, which is the point)
    page.wait_for_selector(f"[data-testid=cell] >> nth={CELLS - 1}", timeout=30000)
    deadline = time.monotonic() + 10
    while (mark := page.evaluate("performance.getEntriesByName('board-drawn').map(m => m.startTime)")) == []:
        assert time.monotonic() < deadline, "the board never marked itself drawn"
        time.sleep(0.02)
    return mark[0]


def median_interactive_ms(page, gateway: str, runs: int = 5) -> tuple[float, list[float]]:  # noqa: ANN001
    """The median of `runs` reloads of the board (logged in: the tab's refresh token logs back in)."""
    times = [board_drawn_ms(page, gateway + "/#/board") for _ in range(runs)]
    return statistics.median(times), times
