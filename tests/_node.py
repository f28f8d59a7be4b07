"""Node.js and the official socket.io-client for the tests that drive Zapline with them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"


def require_node() -> str:
    """Return the path of ``node``; skip (fail when ``CI=true``) if Node or the client is missing."""
    node = shutil.which("node")
    reason = None
    if node is None:
        reason = "Node.js is not installed (needed for the socket.io-client tests)"
    elif not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        reason = f"socket.io-client is not installed: run `npm ci` in {JS_DIR}"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    assert node is not None
    return node
