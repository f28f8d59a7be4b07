"""The ``zapline`` command: serve, tokens, a listening client, admin records, the fake Cloud API."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from zapline.config import ConfigError, Settings, load_settings


def _print_json(value: Any) -> None:
    # Records are printed through desk.contract's builders, in the API's camelCase form.
    sys.stdout.write(orjson.dumps(value).decode() + "\n")
    sys.stdout.flush()


def _fail(message: str, code: int = 2) -> int:
    sys.stderr.write(f"zapline: {message}\n")
    return code


def _run_async(main: Any) -> Any:
    # Only the import is guarded: an ImportError raised while ``main`` runs is a real error,
    # and ``main`` is a coroutine that must not be started a second time.
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


# -- serve -------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from zapline.logs import setup_logging

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.socket_port is not None:
        overrides["socket_port"] = args.socket_port
    if args.log_level:
        overrides["log_level"] = args.log_level
    settings = replace(settings, **overrides)
    setup_logging(settings.log_level, settings.log_format)
    if args.conformance:
        from zapline.conformance import run_conformance

        _run_async(run_conformance(settings.host, args.socket_port or 3000))
        return 0
    from zapline.runtime import run

    try:
        _run_async(run(settings))
    except OSError as exc:
        return _fail(str(exc), 1)
    return 0


# -- tokens and the listening client -----------------------------------------------------------


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from desk.auth import issue_token

    print(
        issue_token(
            settings.jwt_secret,
            user_id=args.user,
            tenant_id=args.tenant,
            role=args.role,
            ttl=args.ttl,
        )
    )
    return 0


def cmd_listen(args: argparse.Namespace, settings: Settings) -> int:
    import socketio

    async def main() -> int:
        client = socketio.AsyncClient(reconnection=True)

        @client.on("*")
        async def any_event(event: str, *data: Any) -> None:
            _print_json({"event": event, "data": data[0] if len(data) == 1 else list(data)})

        @client.event
        async def connect() -> None:
            sys.stderr.write(f"connected to {args.url} (sid {client.sid}, {client.transport()})\n")
            for conversation in args.join or ():
                result = await client.call("conversation:join", conversation, timeout=10)
                sys.stderr.write(f"join {conversation}: {result}\n")

        @client.event
        async def connect_error(data: Any) -> None:
            message = data.get("message") if isinstance(data, dict) else data
            sys.stderr.write(f"connect_error: {message}\n")

        @client.event
        async def disconnect(reason: Any = None) -> None:
            sys.stderr.write(f"disconnected ({reason})\n")

        transports = ["websocket"] if args.websocket_only else None
        try:
            await client.connect(
                args.url, auth={"token": args.token}, transports=transports, wait_timeout=10
            )
        except socketio.exceptions.ConnectionError as exc:
            sys.stderr.write(f"zapline: could not connect: {exc}\n")
            return 1
        await client.wait()
        return 0

    try:
        return int(_run_async(main()))
    except KeyboardInterrupt:
        return 0


# -- admin records -----------------------------------------------------------------------------


def _with_storage(settings: Settings, fn: Any, *, migrate: bool = True) -> Any:
    from storage import open_storage

    async def main() -> Any:
        storage = await open_storage(settings.database_url)
        try:
            if migrate:
                await storage.migrate()
            return await fn(storage)
        finally:
            await storage.aclose()

    return _run_async(main())


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def go(storage: Any) -> list[int]:
        return list(await storage.migrate())

    applied = _with_storage(settings, go, migrate=False)
    _print_json(
        {"database": settings.describe_database(), "applied": applied, "status": "up to date"}
    )
    return 0


def cmd_tenant_create(args: argparse.Namespace, settings: Settings) -> int:
    from desk.contract import tenant_payload

    _print_json(tenant_payload(_with_storage(settings, lambda s: s.create_tenant(args.name))))
    return 0


def cmd_user_create(args: argparse.Namespace, settings: Settings) -> int:
    from desk.contract import user_payload

    async def go(storage: Any) -> Any:
        if await storage.get_tenant(args.tenant) is None:
            raise LookupError(f"no tenant {args.tenant!r}")
        return await storage.create_user(
            args.tenant, args.email, args.password, role=args.role, name=args.name
        )

    _print_json(user_payload(_with_storage(settings, go)))
    return 0


def cmd_account_read_receipts(args: argparse.Namespace, settings: Settings) -> int:
    async def go(storage: Any) -> Any:
        enabled = args.state == "on"
        if not await storage.set_read_receipts(args.tenant, args.account, enabled):
            raise LookupError(f"tenant {args.tenant!r} has no account {args.account!r}")
        return {"accountId": args.account, "readReceipts": enabled}

    _print_json(_with_storage(settings, go))
    return 0


def cmd_account_add(args: argparse.Namespace, settings: Settings) -> int:
    from desk.contract import account_payload

    async def go(storage: Any) -> Any:
        if await storage.get_tenant(args.tenant) is None:
            raise LookupError(f"no tenant {args.tenant!r}")
        return await storage.add_account(
            args.tenant,
            args.phone_number_id,
            verify_token=args.verify_token,
            app_secret=args.app_secret,
            access_token=args.access_token,
        )

    _print_json(account_payload(_with_storage(settings, go)))
    return 0


def cmd_fake_whatsapp(args: argparse.Namespace, settings: Settings) -> int:
    import anyio

    from api.fake_cloud import serve_fake

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                lambda task_status: serve_fake(
                    args.host,
                    args.port,
                    webhook_url=args.webhook_url,
                    app_secret=args.app_secret,
                    task_status=task_status,
                )
            )
            sys.stderr.write(
                f"fake WhatsApp Cloud API on http://{args.host}:{port} "
                f"(status webhooks -> {args.webhook_url or 'off'})\n"
            )

    try:
        _run_async(main())
    except KeyboardInterrupt:
        pass
    return 0


# -- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``zapline`` command."""
    parser = argparse.ArgumentParser(
        prog="zapline", description="Realtime core for WhatsApp customer-service desks."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the API and the Socket.IO listener")
    p.add_argument("--host", help="interface to bind (ZAPLINE_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="API port (ZAPLINE_PORT, default 3333)")
    p.add_argument(
        "--socket-port", type=int, help="Socket.IO port (ZAPLINE_SOCKET_PORT, default 3334)"
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--conformance",
        action="store_true",
        help="serve the socket.io/engine.io protocol test-suite profile on port 3000",
    )
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("token", help="print a JWT signed with JWT_SECRET")
    p.add_argument("--tenant", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--role", default="agent", choices=["admin", "agent", "ops"])
    p.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    p.set_defaults(fn=cmd_token)

    p = sub.add_parser("listen", help="connect with a token and print every event as a JSON line")
    p.add_argument("--url", default="http://127.0.0.1:3334")
    p.add_argument("--token", required=True)
    p.add_argument("--join", action="append", help="also join this conversation (repeatable)")
    p.add_argument("--websocket-only", action="store_true")
    p.set_defaults(fn=cmd_listen)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(fn=cmd_migrate)

    tenant = sub.add_parser("tenant", help="tenants").add_subparsers(dest="action", required=True)
    p = tenant.add_parser("create")
    p.add_argument("--name", required=True)
    p.set_defaults(fn=cmd_tenant_create)

    user = sub.add_parser("user", help="users (agents, admins)").add_subparsers(
        dest="action", required=True
    )
    p = user.add_parser("create")
    p.add_argument("--tenant", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--name")
    p.add_argument("--role", default="agent", choices=["admin", "agent", "ops"])
    p.set_defaults(fn=cmd_user_create)

    account = sub.add_parser("account", help="WhatsApp numbers").add_subparsers(
        dest="action", required=True
    )
    p = account.add_parser("add")
    p.add_argument("--tenant", required=True)
    p.add_argument("--phone-number-id", required=True)
    p.add_argument("--verify-token")
    p.add_argument("--app-secret")
    p.add_argument("--access-token")
    p.set_defaults(fn=cmd_account_add)

    p = account.add_parser("read-receipts", help="mark customer messages read on WhatsApp?")
    p.add_argument("--tenant", required=True)
    p.add_argument("--account", required=True, help="the account id")
    p.add_argument("state", choices=["on", "off"])
    p.set_defaults(fn=cmd_account_read_receipts)

    p = sub.add_parser("fake-whatsapp", help="serve a local fake of the WhatsApp Cloud API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3390)
    p.add_argument("--webhook-url", help="post status webhooks (sent/delivered/read) here")
    p.add_argument("--app-secret", help="sign those webhooks with this secret")
    p.set_defaults(fn=cmd_fake_whatsapp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zapline`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    needs_secret = args.command in ("serve", "token")
    try:
        settings = load_settings(os.environ, require_secret=needs_secret)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        return int(args.fn(args, settings))
    except KeyboardInterrupt:
        return 130
    except (LookupError, ValueError) as exc:
        return _fail(str(exc), 1)
    except Exception as exc:
        name = type(exc).__name__
        if name in ("Conflict", "StorageUnavailable", "StorageError"):
            return _fail(f"{name}: {exc}", 1)
        raise


if __name__ == "__main__":
    raise SystemExit(main())
