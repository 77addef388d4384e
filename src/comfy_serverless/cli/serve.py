"""``comfy-serverless serve``: the worker as an HTTP service (uvicorn), with ComfyUI started from the same
settings as the RunPod worker."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from ..settings import Settings
from .common import CommandError, ExitCode


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        raise CommandError(f"invalid settings: {exc}", ExitCode.USAGE) from None
    host = args.host or settings.http_host
    port = args.port or settings.http_port

    from ..http.auth import BindRefused, check_bind

    try:
        check_bind(host, settings)
    except BindRefused as exc:
        raise CommandError(str(exc), ExitCode.USAGE) from None

    from ..http.server import serve
    from ..logs import configure_logging

    configure_logging(settings.log_level)
    return serve(settings, host, port)


def add_parsers(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the worker as an HTTP service (RunPod-compatible routes, progress events, webhooks)",
        description="Start ComfyUI and serve jobs over HTTP: /run, /runsync, /status, /stream, /cancel, "
        "/purge-queue and /health as RunPod answers them, /jobs/{id}/events (server-sent progress), "
        "/templates, /ready, /metrics and /docs. Settings come from the environment, as for the RunPod "
        "worker (HTTP_TOKEN, HTTP_QUEUE_SIZE, CONCURRENCY, ...). Without HTTP_TOKEN it listens on "
        "loopback only, unless HTTP_ALLOW_PUBLIC=true.",
    )
    serve.add_argument("--host", help="address to listen on (default: HTTP_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: HTTP_PORT, 8000)")
    serve.set_defaults(func=cmd_serve)
