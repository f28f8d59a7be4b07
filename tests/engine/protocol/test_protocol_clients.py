"""``takes_offsets``: which handshake requests come from clients that can take offsets.

The strings are the ones the real clients send (measured on this machine, and read from
python-engineio's ``base_client._get_engineio_url`` / ``_get_url_timestamp``).
"""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from engine.protocol import takes_offsets


def _query(text: str) -> dict[str, str]:
    # As the listener parses it (engine/transport/_http.py): first value, in order.
    return {k: v[0] for k, v in parse_qs(text).items()}


@pytest.mark.parametrize(
    ("agent", "query"),
    [
        # python-socketio AsyncClient (aiohttp), polling handshake and websocket-only.
        ("Python/3.11 aiohttp/3.14.5", "transport=polling&EIO=4&t=1796304312.9882925"),
        ("Python/3.11 aiohttp/3.14.5", "transport=websocket&EIO=4&t=1796304312.9882925"),
        # python-socketio Client (sync): requests for polling ...
        ("python-requests/2.32.3", "transport=polling&EIO=4&t=1796304312.9882925"),
        # ... websocket-client for websocket: no User-Agent at all.
        (None, "transport=websocket&EIO=4&t=1796304312.9882925"),
        # timestamp_requests=False: no t, the parameter order still tells.
        (None, "transport=websocket&EIO=4"),
        # A user query in the URL comes first; the engine's parameters follow in its order.
        (None, "token=abc&transport=polling&EIO=4&t=1796304312.98"),
        # A custom User-Agent header, but python-engineio's float timestamp.
        ("my-bot/1.0", "EIO=4&transport=polling&t=1796304312.98"),
    ],
)
def test_python_engineio_clients_do_not_take_offsets(agent: str | None, query: str) -> None:
    headers = {} if agent is None else {"user-agent": agent}
    assert takes_offsets(headers, _query(query)) is False


@pytest.mark.parametrize(
    ("agent", "query"),
    [
        # socket.io-client 4.8 in Node: polling (xmlhttprequest-ssl) and websocket (no UA).
        ("node-XMLHttpRequest", "EIO=4&transport=polling&t=l7qmqxze"),
        (None, "EIO=4&transport=websocket"),
        (None, "EIO=4&transport=polling&t=PZt8nQ0"),
        # A browser, with a user query first.
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
            "token=abc&EIO=4&transport=polling&t=PZt8nQ0",
        ),
        # Unknown clients get what a socket.io server gives them.
        ("curl/8.5.0", "EIO=4&transport=polling"),
        (None, ""),
    ],
)
def test_other_clients_take_offsets(agent: str | None, query: str) -> None:
    headers = {} if agent is None else {"user-agent": agent}
    assert takes_offsets(headers, _query(query)) is True
