"""The ``workspace`` command: serve, list, call and inspect functions, sources and settings.

Every subcommand has ``--help``. Failures print one line saying what to do to stderr
and exit non-zero: 1 for a failed call, 2 for bad usage or invalid settings.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import signal
import subprocess  # nosec B404  # only to start our own worker processes
import sys
from collections.abc import Sequence
from typing import Any

from external_api import __version__

__all__ = ["build_parser", "main", "parse_arguments"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``workspace`` command."""
    parser = argparse.ArgumentParser(
        prog="workspace",
        description="Agent workspace runtime: external data APIs, function server, browser.",
    )
    parser.add_argument("--version", action="version", version=f"workspace-toolkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("version", help="print the installed version")

    serve = commands.add_parser(
        "serve",
        help="run the function server",
        description="Run the function server until SIGTERM/SIGINT, then drain and exit 0.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help="port (default FUNC_SERVER_PORT, else 8080; 0 = any free port)"
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the port (SO_REUSEPORT)"
    )
    serve.add_argument("--call-timeout", type=float, help="seconds per call before 504 (60)")
    serve.add_argument("--max-concurrency", type=int, help="calls in flight before 503 (64)")
    serve.add_argument("--grace-period", type=float, help="seconds to drain on SIGTERM (30)")
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="allow a non-loopback --host without WORKSPACE_SERVER_TOKEN",
    )
    serve.add_argument(
        "--load",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first, registering the functions it @expose-s (repeatable)",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)

    functions = commands.add_parser("functions", help="list the registered functions")
    functions.add_argument("--json", action="store_true", help="print the specs as JSON")
    functions.add_argument(
        "--openai", action="store_true", help="print the specs as OpenAI tool definitions"
    )

    call = commands.add_parser(
        "call",
        help="call a function and print its JSON result",
        description="Call NAME with arguments: key=value passes a string (converted to the "
        "parameter's type), key:=JSON passes raw JSON (lists, objects, null).",
    )
    call.add_argument("name", help='the function, e.g. "YahooFinance/get_stock_chart"')
    call.add_argument("arguments", nargs="*", metavar="key=value", help="the arguments")
    call.add_argument(
        "--remote", action="store_true", help="call the function server at FUNC_SERVER_PORT"
    )

    commands.add_parser("sources", help="list the data sources and whether they load")
    commands.add_parser("config", help="print the effective settings (secrets masked)")
    return parser


def parse_arguments(pairs: Sequence[str]) -> dict[str, Any]:
    """Turn ``key=value`` / ``key:=JSON`` words into keyword arguments.

    Raises:
        ValueError: for a word without ``=`` or with invalid JSON after ``:=``.
    """
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"argument {pair!r} is not key=value (or key:=JSON).")
        if key.endswith(":"):
            try:
                arguments[key[:-1]] = json.loads(value)
            except ValueError as error:
                raise ValueError(
                    f"argument {pair!r}: the value after := is not JSON ({error})."
                ) from None
        else:
            arguments[key] = value
    return arguments


def _serve(args: argparse.Namespace) -> int:
    from external_api.config import get_settings
    from external_api.observability import configure_tracing
    from external_api.server import ServerOptions, serve

    settings = get_settings()
    options = ServerOptions.from_settings(
        settings,
        host=args.host,
        port=args.port,
        call_timeout=args.call_timeout,
        max_concurrency=args.max_concurrency,
        grace_period=args.grace_period,
        allow_unauthenticated=args.allow_unauthenticated or None,
    )
    options.check()
    if args.workers < 1:
        raise ValueError("--workers must be at least 1.")
    if args.workers > 1:
        return _serve_workers(args, options.port)
    for module in args.load:
        importlib.import_module(module)
    configure_tracing()
    asyncio.run(serve(options, reuse_port=args.reuse_port))
    return 0


def _spawn(command: list[str]) -> subprocess.Popen[bytes]:
    # Our own interpreter and module with arguments we built: no shell, no outside input.
    return subprocess.Popen(command)  # noqa: S603  # nosec B603


def _serve_workers(args: argparse.Namespace, port: int) -> int:
    """Run ``args.workers`` single-worker servers sharing ``port``; forward SIGTERM/SIGINT."""
    if port == 0:
        raise ValueError("--workers needs a fixed --port (workers cannot share port 0).")
    command = [sys.executable, "-m", "external_api", "serve", "--reuse-port"]
    command += ["--host", args.host, "--port", str(port)]
    for flag in ("call_timeout", "max_concurrency", "grace_period"):
        if getattr(args, flag) is not None:
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.allow_unauthenticated:
        command.append("--allow-unauthenticated")
    for module in args.load:
        command += ["--load", module]
    children = [_spawn(command) for _ in range(args.workers)]

    def forward(signum: int, frame: object) -> None:
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    # A worker killed by a signal reports -signum; report it like a shell would (128+n).
    return next((128 - code if code < 0 else code for code in codes if code != 0), 0)


def _functions(args: argparse.Namespace) -> int:
    from external_api.function_utils import default_registry

    registry = default_registry()
    specs = registry.specs()
    if args.openai:
        print(json.dumps([spec.openai_tool() for spec in specs], indent=2))
    elif args.json:
        print(json.dumps([spec.as_dict() for spec in specs], indent=2))
    else:
        rows = [("NAME", "PARAMETERS (* = required)", "DESCRIPTION")]
        for spec in specs:
            schema = spec.parameters_schema()
            required = set(schema.get("required", []))
            params = ", ".join(
                f"{name}{'*' if name in required else ''}" for name in schema["properties"]
            )
            rows.append((spec.name, params or "-", spec.description.split("\n", 1)[0]))
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        for name, params, description in rows:
            print(f"{name:<{widths[0]}}  {params:<{widths[1]}}  {description}".rstrip())
    for label, error in registry.load_errors.items():
        print(f"warning: {label} not loaded: {error}", file=sys.stderr)
    return 0


def _call(args: argparse.Namespace) -> int:
    arguments = parse_arguments(args.arguments)
    if args.remote:
        from external_api.function_utils import FunctionProxy

        result = FunctionProxy().call(args.name, **arguments)
    else:
        from external_api.function_utils import default_registry

        result = default_registry().call(args.name, **arguments)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def _sources(args: argparse.Namespace) -> int:
    from external_api.data_sources.client import ApiClient

    client = ApiClient()
    for name in client.sources():
        try:
            client.source(name)
            status = "ok"
        except Exception as error:  # reported, not raised: list every source
            status = f"unavailable: {error}"
        print(f"{name:<16} {client.source_info(name).origin:<24} {status}")
    return 0


def _config(args: argparse.Namespace) -> int:
    from external_api.config import get_settings

    print(json.dumps(get_settings().public_dict(), indent=2))
    return 0


_COMMANDS = {
    "serve": _serve,
    "functions": _functions,
    "call": _call,
    "sources": _sources,
    "config": _config,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``workspace`` command with ``argv`` and return its exit status."""
    from external_api.errors import ApiError, ConfigurationError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "version":
        print(__version__)
        return 0
    command = _COMMANDS.get(args.command)
    if command is None:
        parser.print_help()
        return 0
    try:
        from external_api.config import get_settings

        get_settings().configure_logging()  # to stderr: stdout carries only the output
        return command(args)
    except (ConfigurationError, ValueError) as error:  # bad settings or usage: exit 2
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ApiError as error:
        print(f"error: {error.type_name}: {error.message}", file=sys.stderr)
        return 1
