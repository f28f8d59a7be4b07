"""Fixtures of the browser suite: Debian's Chromium driven by Playwright against a real server.

One ``zapline serve`` subprocess (SQLite) and one fake Cloud API per module, reused from the
integration harness; browsers reach the Socket.IO listener through a ``CuttableProxy`` (what
``GET /api/config`` announces), so a test can cut the network under a running page. Each test
makes its own tenant. Without /usr/bin/chromium or the playwright package the tests skip,
except under ``CI=true``, where that is a failure (``make test`` installs both).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from _desk_harness import FakeCloud, Tenant, ZaplineServer, create_tenant  # noqa: E402
from _proxy import CuttableProxy  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CONSOLE_CLIENT = (
    Path(__file__).resolve().parents[2]
    / "api/console/node_modules/socket.io-client/dist/socket.io.esm.min.js"
)


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium; make test does it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[test]')"
    if not CONSOLE_CLIENT.exists():
        return "the console's socket.io-client is missing (npm ci in api/console; make does it)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip (or, in CI, fail) the browser tests when Chromium or Playwright is missing."""
    problem = _missing()
    if problem is None or os.environ.get("CI") == "true":
        return  # in CI the tests run and fail on what is missing
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture(scope="module")
def zapline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZaplineServer]:
    """A server on SQLite with a fake Cloud API, its socket announced through a proxy."""
    workdir = tmp_path_factory.mktemp("console")
    server = ZaplineServer(database_url=f"sqlite:///{workdir / 'zapline.db'}", workdir=workdir)
    proxy = CuttableProxy(target_port=server.socket_port)
    server.extra_env["ZAPLINE_PUBLIC_SOCKET_URL"] = proxy.url
    fake = FakeCloud(workdir=workdir, webhook_url=server.webhook_url)
    server.whatsapp_api_url = fake.url
    server.proxy = proxy  # type: ignore[attr-defined]
    try:
        proxy.start()
        fake.start()
        server.start()
        yield server
        code = server.stop()
        assert code == 0, f"zapline serve exited with {code}:\n{server.log_tail()}"
    finally:
        try:
            server.stop()
        finally:
            fake.stop()
            proxy.close()


@pytest.fixture
def proxy(zapline: ZaplineServer) -> Iterator[CuttableProxy]:
    """The cuttable link between browsers and the socket listener (restored after the test)."""
    link: CuttableProxy = zapline.proxy  # type: ignore[attr-defined]
    yield link
    link.restore()


@pytest.fixture
def tenant(zapline: ZaplineServer) -> Tenant:
    """A fresh tenant with an agent and a number signed with the fake Cloud API's secret."""
    return create_tenant(zapline)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A plain httpx client (the tests are synchronous: Playwright's sync API)."""
    with httpx.Client(timeout=15.0) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module.

    Not per session: while Playwright's sync API is open it keeps an asyncio loop marked as
    running in the main thread, and every asyncio test after it in the session would fail.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_context(browser: Any) -> Iterator[Callable[..., Any]]:
    """``new_context(**options)`` -> a fresh browser context (its own storage); closed after.

    An uncaught exception in any of its pages (a console bug) fails the test at teardown.
    """
    contexts: list[Any] = []
    errors: list[str] = []

    def factory(**options: Any) -> Any:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        options.setdefault("locale", "en-US")
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        context.on("page", lambda page: page.on("pageerror", lambda exc: errors.append(str(exc))))
        contexts.append(context)
        return context

    yield factory
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the console: {errors}"


@pytest.fixture
def artifacts() -> Path:
    """tests/artifacts/, where screenshots go (ignored by git)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
