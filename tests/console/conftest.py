"""Fixtures of the console's browser tests: one running system with the demo district for all of them, one
Chromium, and per test a fresh browser context that may not reach any other machine."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.browser import PHONE, VIEWPORT, Running, chromium_or_reason, guard, launch, start_system


@pytest.fixture(scope="module")
def console_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The whole system (`jiaozhi up` with the demo) on free ports, shared by every console test."""
    running = start_system(Path(tmp_path_factory.mktemp("console-system")))
    try:
        yield running
    finally:
        running.launcher.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    reason = chromium_or_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


def _guarded_page(chromium, **options: object) -> Iterator[object]:  # noqa: ANN001
    """A new browser context (no cookies, no storage), Chinese, offline but for this machine; checked after."""
    context = chromium.new_context(locale="zh-CN", **options)
    seen = guard(context)
    try:
        yield context.new_page()
    finally:
        context.close()
    seen.check()


@pytest.fixture
def page(chromium, console_system: Running) -> Iterator[object]:  # noqa: ANN001
    """A page at 1600 px (the command centre's screen)."""
    yield from _guarded_page(chromium, viewport=VIEWPORT, accept_downloads=True)


@pytest.fixture
def phone(chromium, console_system: Running) -> Iterator[object]:  # noqa: ANN001
    """A page on a 390 × 844 phone (touch, mobile)."""
    yield from _guarded_page(chromium, **PHONE)
