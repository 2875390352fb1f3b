"""``build_app()``: layout of the tabs and launch settings. Each tab lives in ``tabs/``."""

from __future__ import annotations

import os

import gradio as gr

from tokmap_ui.ui.tabs import project

TITLE = "tokmap — move language models across vocabularies"


def build_app() -> gr.Blocks:
    """Build the whole app (no launch, no model loading: handlers load lazily)."""
    with gr.Blocks(title="tokmap", fill_width=True) as demo:
        gr.Markdown(f"# {TITLE}\nTik-to-Tok conversion, cross-model control and reviewable token maps.")
        with gr.Tabs():
            with gr.Tab("Project & data", id="project"):
                project.build()
    return demo


def launch_app(demo: gr.Blocks | None = None, host: str | None = None, port: int | None = None,
               **launch_kwargs) -> gr.Blocks:
    """Launch on ``host:port`` (default 127.0.0.1:7860, or TOKMAP_HOST / TOKMAP_PORT)."""
    demo = demo or build_app()
    host = host or os.environ.get("TOKMAP_HOST", "127.0.0.1")
    port = port or int(os.environ.get("TOKMAP_PORT", "7860"))
    demo.queue(default_concurrency_limit=4)
    demo.launch(server_name=host, server_port=port, footer_links=["api", "settings"], **launch_kwargs)
    return demo
