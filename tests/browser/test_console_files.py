"""What Zapline serves for the console, over plain HTTP (no browser needed)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from _desk_harness import ZaplineServer

CONSOLE = Path(__file__).resolve().parents[2] / "api" / "console"


def test_the_page_its_modules_and_the_locked_client_are_served(
    zapline: ZaplineServer, http: httpx.Client
) -> None:
    page = http.get(f"{zapline.api_url}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/console/main.js">' in page.text
    policy = page.headers["content-security-policy"]
    socket_url = http.get(f"{zapline.api_url}/api/config").json()["socketUrl"]
    assert f"connect-src 'self' {socket_url} {socket_url.replace('http', 'ws', 1)};" in policy
    assert "script-src 'self';" in policy

    for name in ("main.js", "store.js", "console.css"):
        asset = http.get(f"{zapline.api_url}/console/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["cache-control"] == "no-cache"
    assert "javascript" in http.get(f"{zapline.api_url}/console/main.js").headers["content-type"]

    client = http.get(f"{zapline.api_url}/console/vendor/socket.io.esm.min.js")
    assert client.status_code == 200
    assert "javascript" in client.headers["content-type"]
    locked = json.loads((CONSOLE / "package-lock.json").read_text())
    version = locked["packages"]["node_modules/socket.io-client"]["version"]
    assert client.text.startswith(f"/*!\n * Socket.IO v{version}\n")


def test_nothing_else_is_served_from_the_console_folders(
    zapline: ZaplineServer, http: httpx.Client
) -> None:
    for path in (
        "/console/package.json",
        "/console/package-lock.json",
        "/console/.hidden.js",
        "/console/missing.js",
        "/console/vendor/socket.io.js",
        "/console/node_modules/socket.io-client/package.json",
        "/console/..%2Fapp.py",
    ):
        response = http.get(f"{zapline.api_url}{path}")
        assert response.status_code == 404, path
