"""The console's files at the gateway: shipped in the package, answered from memory under a strict CSP, every module
they import present, `/docs` without a CDN. (What the screens do is tested in a browser: tests/console.)"""
from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest

from deploy.natsd import free_port
from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.console import CONSOLE_DIR, load_assets
from tests.helpers import assert_problem, serving

IMPORT = re.compile(r"""(?:import|from)\s*\(?\s*["'](\.{1,2}/[^"']+)["']""")


@pytest.fixture
async def gateway() -> AsyncIterator[httpx.AsyncClient]:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = GatewaySettings(environment="test", log_level="WARNING",  # type: ignore[arg-type]
                               database_url=f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='jz-gw-')}/gw.db",
                               classification_url=dead, tracing_url=dead, dispatch_url=dead, assessment_url=dead)
    async with serving(create_app(settings)) as client:
        yield client


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


async def test_the_console_page_has_a_strict_csp_no_inline_script_and_only_local_assets(gateway) -> None:  # noqa: ANN001
    response = await gateway.get("/")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    page = parse(response.text)
    assert not page.inline_script
    urls = [a.get("src") or a.get("href") for tag, a in page.tags if tag in ("script", "link")]
    assert urls and all(u == "data:," or u.startswith("/console/") for u in urls), urls
    for url in urls:
        if url.startswith("/console/"):
            asset = await gateway.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-security-policy"] == csp


def test_every_module_the_console_imports_ships_with_it() -> None:
    assets = load_assets()
    missing = []
    for path, asset in assets.items():
        if not path.endswith(".js") or path.startswith("vendor/swagger-ui/"):
            continue
        folder = path.rsplit("/", 1)[0] if "/" in path else ""
        for spec in IMPORT.findall(asset.body.decode()):
            parts = [p for p in f"{folder}/{spec}".split("/") if p not in ("", ".")]
            resolved: list[str] = []
            for part in parts:
                resolved = resolved[:-1] if part == ".." else [*resolved, part]
            if "/".join(resolved) not in assets:
                missing.append((path, spec))
    assert missing == []
    assert "js/screens/board.js" in assets and "vendor/echarts.esm.min.js" in assets


def test_every_vendored_library_is_named_with_its_version_and_licence() -> None:
    readme = (CONSOLE_DIR / "vendor" / "README.md").read_text()
    vendored = [p.name for p in (CONSOLE_DIR / "vendor").rglob("*.js")]
    assert vendored and all(f"`{name}`" in readme or f"/{name}`" in readme for name in vendored), vendored
    for licence in ("LICENSE.preact", "LICENSE.htm", "LICENSE.echarts", "swagger-ui/LICENSE"):
        assert (CONSOLE_DIR / "vendor" / licence).read_text().strip()


def test_the_console_messages_exist_in_chinese_and_english_alike() -> None:
    text = (CONSOLE_DIR / "js" / "messages.js").read_text()
    zh, en = text.split("\n  en: {")
    zh_keys = dict(re.findall(r'"([\w.-]+)": "([^"]*)"', zh))
    en_keys = dict(re.findall(r'"([\w.-]+)": "([^"]*)"', en))
    assert zh_keys.keys() == en_keys.keys() and len(zh_keys) > 100
    no_chinese = [k for k, v in zh_keys.items() if not re.search(r"[\u4e00-\u9fff]", v) and k != "lang.en"]
    assert no_chinese == []


async def test_files_revalidate_with_an_etag_and_an_unknown_one_is_a_problem(gateway) -> None:  # noqa: ANN001
    first = await gateway.get("/console/js/main.js")
    again = await gateway.get("/console/js/main.js", headers={"if-none-match": first.headers["etag"]})
    missing = await gateway.get("/console/js/nothing.js")

    assert first.headers["content-type"].startswith("text/javascript")
    assert first.headers["cache-control"] == "no-cache"
    assert again.status_code == 304 and again.content == b""
    assert_problem(missing, 404)


async def test_docs_load_swagger_ui_from_the_gateway_not_a_cdn(gateway) -> None:  # noqa: ANN001
    response = await gateway.get("/docs")

    assert response.status_code == 200 and "/api/v1/openapi.json" in response.text
    page = parse(response.text)
    assert not page.inline_script
    urls = [a.get("src") or a.get("href") for tag, a in page.tags if tag in ("script", "link")]
    assert "/console/vendor/swagger-ui/swagger-ui-bundle.js" in urls
    assert all(u.startswith("/console/") for u in urls), urls
    assert "unsafe-eval" not in response.headers["content-security-policy"]
    bundle = await gateway.get("/console/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 500_000
