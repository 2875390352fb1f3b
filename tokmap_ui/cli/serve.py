"""``serve``: start the Gradio app (the same app ``python app.py`` starts)."""

from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="start the web app",
                              description="Start the Gradio app. Binds to 127.0.0.1 unless told otherwise.")
    add_server_flags(p)
    p.set_defaults(run=run_serve)


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """--host/--port, defaulting to TOKMAP_HOST/TOKMAP_PORT, then 127.0.0.1:7860 (never 0.0.0.0 unless asked)."""
    parser.add_argument("--host", default=os.environ.get("TOKMAP_HOST", "127.0.0.1"),
                        help="interface to bind (default 127.0.0.1; env TOKMAP_HOST; 0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("TOKMAP_PORT", "7860")),
                        help="port (default 7860; env TOKMAP_PORT)")


def parse_server_flags(argv: list[str] | None = None) -> tuple[str, int]:
    """Parse just --host/--port (for ``python app.py``); returns (host, port)."""
    parser = argparse.ArgumentParser(prog="app.py", description="Start the tokmap web app.")
    add_server_flags(parser)
    args = parser.parse_args(argv)
    return args.host, args.port


def run_serve(args: argparse.Namespace) -> int:
    from tokmap_ui.ui import launch_app  # gradio is imported only here, never by the core

    launch_app(host=args.host, port=args.port)
    return 0
