"""Screenshots of every console screen for docs/screens/, at 1600 × 1000 in Chinese (one in English), and of the
officer's phone at 390 × 844 (phone-*.png).

    python -m tests.console.screenshots                    # starts the system with the demo, then stops it
    python -m tests.console.screenshots --gateway URL      # uses a running one (e.g. `make up`'s)
    python -m tests.console.screenshots --phone            # the phone's screens only

Offline like the tests: a request to another machine aborts the run.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from tests.console.browser import PHONE, VIEWPORT, guard, launch, log_in, start_system

OUT = Path(__file__).resolve().parents[2] / "docs" / "screens"


def shoot(gateway: str, out: Path = OUT) -> list[Path]:
    """Log in as command, open each screen, wait until it is drawn, save a PNG; the files written."""
    token = httpx.post(gateway + "/api/v1/auth/token", timeout=10,
                       data={"grant_type": "password", "username": "command", "password": "demo"}).json()
    headers = {"authorization": "Bearer " + token["access_token"]}
    task = httpx.get(gateway + "/api/v1/tasks", params={"limit": 1}, headers=headers, timeout=10).json()["items"][0]
    out.mkdir(parents=True, exist_ok=True)
    shots = [
        ("board", "#/board", "[data-testid=cell] >> nth=207"),
        ("tracing", f"#/tracing/{task['incident_id']}", "[data-testid=order]"),
        ("assessment", "#/assessment/ps-yiqiao", "[data-testid=history][data-drawn=true]"),
        ("map", "#/map", "[data-testid=map-chart][data-drawn=true]"),
        ("classification", "#/classification", "[data-testid=assignments]"),
        ("dispatch", "#/dispatch", "[data-testid=rates-chart][data-drawn=true]"),
    ]
    written = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
        seen = guard(context)
        page = context.new_page()
        page.goto(gateway + "/")
        page.wait_for_selector("input[name=username]")
        written.append(_save(page, out / "login.png"))
        log_in(page, gateway)
        for name, route, ready in shots:
            page.goto(f"{gateway}/{route}")
            page.wait_for_selector(ready, timeout=30000)
            page.wait_for_timeout(600)  # ECharts' entry animation
            written.append(_save(page, out / f"{name}.png"))
        page.click("[data-testid=lang]")
        page.goto(f"{gateway}/#/board")
        page.wait_for_selector("nav >> text=Daily board")
        page.wait_for_selector("[data-testid=cell] >> nth=207")
        written.append(_save(page, out / "board-en.png"))
        page.goto(gateway + "/docs")
        page.wait_for_selector(".swagger-ui .opblock", timeout=30000)
        written.append(_save(page, out / "docs.png"))
        context.close()
        browser.close()
    seen.check()
    return written


def shoot_phone(gateway: str, out: Path = OUT) -> list[Path]:
    """Log in as ps-yiqiao on a phone-sized page: its incidents, its orders, one open order; the files written."""
    token = httpx.post(gateway + "/api/v1/auth/token", timeout=10,
                       data={"grant_type": "password", "username": "ps-yiqiao", "password": "demo"}).json()
    headers = {"authorization": "Bearer " + token["access_token"]}
    open_orders = httpx.get(gateway + "/api/v1/tasks", params={"unit_id": "ps-yiqiao", "status": "dispatched",
                                                               "limit": 1}, headers=headers, timeout=10).json()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(**PHONE, locale="zh-CN")
        seen = guard(context)
        page = context.new_page()
        page.goto(gateway + "/#/m/tasks")
        page.fill("input[name=username]", "ps-yiqiao")
        page.fill("input[name=password]", "demo")
        page.tap("button[type=submit]")
        page.wait_for_selector("[data-testid=task]", timeout=30000)
        written.append(_save(page, out / "phone-tasks.png"))
        if open_orders["items"]:
            page.goto(f"{gateway}/#/m/task/{open_orders['items'][0]['id']}")
            page.wait_for_selector("[data-testid=step]", timeout=30000)
            written.append(_save(page, out / "phone-task.png", full_page=True))
        page.goto(gateway + "/#/m")
        page.wait_for_selector("[data-testid=incident], .phone main p.muted", timeout=30000)
        written.append(_save(page, out / "phone-incidents.png"))
        context.close()
        browser.close()
    seen.check()
    return written


def _save(page, path: Path, *, full_page: bool = False) -> Path:  # noqa: ANN001
    page.screenshot(path=str(path), full_page=full_page)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", help="a running gateway's URL (default: start the system with the demo)")
    parser.add_argument("--phone", action="store_true", help="only the officer's phone screens")
    args = parser.parse_args()

    def shoot_all(gateway: str) -> list[Path]:
        return shoot_phone(gateway) if args.phone else shoot(gateway) + shoot_phone(gateway)

    if args.gateway:
        files = shoot_all(args.gateway.rstrip("/"))
    else:
        with tempfile.TemporaryDirectory() as data_dir:
            running = start_system(Path(data_dir))
            try:
                files = shoot_all(running.gateway)
            finally:
                running.launcher.stop()
    for path in files:
        print(path)


if __name__ == "__main__":
    main()
