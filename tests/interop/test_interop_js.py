"""The official JavaScript client (socket.io-client 4.8) against the engine, per transport.

One Node process per transport runs every scenario in order (tests/js/client.mjs) and reports
what it observed; each test below checks one scenario of that report.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import orjson
import pytest
from _scenarios import JS_DIR, SERVER_BYTES, auth_error_message, require_node, token_for

from engine import SocketServer

pytestmark = pytest.mark.node

TRANSPORTS = ["websocket", "polling", "upgrade"]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # python-socketio and the module-wide server share one asyncio loop; the engine's own
    # trio coverage lives in tests/engine and test_conformance.
    return "asyncio"


def _bytes(value: Any) -> bytes:
    assert isinstance(value, dict) and set(value) == {"$bytes"}, f"expected binary, got {value!r}"
    return bytes.fromhex(value["$bytes"])


@pytest.fixture(scope="module", params=TRANSPORTS)
async def report(request: pytest.FixtureRequest, interop_server: SocketServer) -> dict[str, Any]:
    node = require_node()
    tenant = f"t-js-{request.param}-{uuid.uuid4().hex[:8]}"
    command = [
        node,
        str(JS_DIR / "client.mjs"),
        "--url",
        f"http://127.0.0.1:{interop_server.port}",
        "--transport",
        request.param,
        "--token",
        token_for(tenant),
        "--bad-token",
        "not-a-jwt",
    ]
    with anyio.fail_after(30):
        done = await anyio.run_process(command, check=False)
    lines = done.stdout.decode().strip().splitlines()
    assert lines, f"node printed nothing (exit {done.returncode}): {done.stderr.decode()[-2000:]}"
    result: dict[str, Any] = orjson.loads(lines[-1])
    result["tenant"] = tenant
    result["exit"] = done.returncode
    return result


def _scenario(report: dict[str, Any], name: str) -> Any:
    assert name not in report["errors"], f"{name} failed in node: {report['errors'][name]}"
    assert name in report["results"], f"{name} did not run: {report['errors']}"
    return report["results"][name]


def test_every_scenario_completed(report: dict[str, Any]) -> None:
    assert report["errors"] == {} and report["ok"] is True and report["exit"] == 0


def test_connect_on_the_expected_transport(report: dict[str, Any]) -> None:
    connect = _scenario(report, "connect")
    assert connect["connected"] is True and isinstance(connect["id"], str)
    mode = report["transport"]
    expected = {
        "websocket": ("websocket", "websocket"),
        "polling": ("polling", "polling"),
        "upgrade": ("polling", "websocket"),
    }[mode]
    assert (connect["firstTransport"], connect["transport"]) == expected


def test_server_emit_to_tenant_room(report: dict[str, Any]) -> None:
    welcome = _scenario(report, "welcome")
    assert welcome["payload"] == {"tenantId": report["tenant"], "socketId": welcome["socketId"]}


def test_emit_with_ack(report: dict[str, Any]) -> None:
    assert _scenario(report, "ack")["args"] == ["hello", 42, {"nested": [1, "two", None]}]


def test_binary_in_event_and_ack(report: dict[str, Any]) -> None:
    binary = _scenario(report, "binary")
    blob, info = binary["ack"]
    assert _bytes(blob) == bytes([255, 3, 2, 1]) and info == {"length": 4}
    back, nested = binary["event"]
    assert _bytes(back) == bytes([255, 3, 2, 1]) and _bytes(nested["inner"]) == b"zap!"


def test_binary_from_client_in_ack(report: dict[str, Any]) -> None:
    client_ack = _scenario(report, "clientAck")
    assert _bytes(client_ack["received"]) == SERVER_BYTES
    assert _bytes(client_ack["reply"]["clientReplied"]) == b"client:" + SERVER_BYTES


@pytest.mark.parametrize(("scenario", "token"), [("badToken", "not-a-jwt"), ("noToken", None)])
def test_refused_connect_carries_our_message(
    report: dict[str, Any], scenario: str, token: str | None
) -> None:
    refused = _scenario(report, scenario)
    assert refused["message"] == auth_error_message(token)
    assert refused["message"].startswith("Authentication error: ")
    assert refused["connected"] is False


def test_custom_namespace_exchanges_events(report: dict[str, Any]) -> None:
    custom = _scenario(report, "customNamespace")
    assert custom["sameEngine"] is True  # multiplexed on the "/" session's Engine.IO connection
    assert custom["ack"] == ["HEY"] and custom["event"] == "HEY"


def test_server_side_disconnect(report: dict[str, Any]) -> None:
    gone = _scenario(report, "serverDisconnect")
    assert gone["reason"] == "io server disconnect"
    assert gone["active"] is False  # the client must not reconnect after a server disconnect
    assert gone["customStillConnected"] is True  # only "/" was disconnected
