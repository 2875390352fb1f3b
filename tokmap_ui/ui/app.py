"""``build_app()``: the tabs, their shared session state and timer, and the launch settings.

Opening the app opens (or creates) the workspace (``TOKMAP_HOME``, default ``./workspace``),
registers the demo project from the bundled kit, and marks jobs whose process died while the app
was down as interrupted. Each tab lives in ``tabs/``; this module only lays them out and wires
the cross-tab refreshes (page load, project change).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

from tokmap_ui.ui.state import AppContext, Session
from tokmap_ui.ui.tabs.cmc import CmcTab
from tokmap_ui.ui.tabs.explore import ExploreTab
from tokmap_ui.ui.tabs.finetune import FinetuneTab
from tokmap_ui.ui.tabs.jobs import JobsTab
from tokmap_ui.ui.tabs.project import ProjectTab
from tokmap_ui.ui.tabs.review import ReviewPanel

TITLE = "tokmap — move language models across vocabularies"
POLL_S = 2.0  # how often open pages poll job progress


def build_app(home: str | Path | None = None, *, poll_s: float = POLL_S) -> gr.Blocks:
    """Build the whole app on the workspace ``home`` (default ``$TOKMAP_HOME`` or ``./workspace``).

    No model is loaded here: handlers load lazily into the shared cache.
    """
    from tokmap_ui.jobs import recover_interrupted
    from tokmap_ui.project import ensure_demo_project

    ctx = AppContext.open(home)
    ensure_demo_project(ctx.store)
    recover_interrupted(ctx.store)
    project, explore, review = ProjectTab(ctx), ExploreTab(ctx), ReviewPanel(ctx)
    finetune, cmc, jobs = FinetuneTab(ctx), CmcTab(ctx), JobsTab(ctx)

    with gr.Blocks(title="tokmap", fill_width=True, delete_cache=(3600, 3600)) as demo:
        session = gr.State(Session())
        timer = gr.Timer(poll_s)
        gr.Markdown(f"## {TITLE}\nTik-to-Tok conversion, cross-model control (CMC) and reviewable token maps. "
                    f"Workspace: `{ctx.store.home}`")
        with gr.Tabs():
            with gr.Tab("Project & data", id="project"):
                project.build(session)
            with gr.Tab("Map & explore", id="explore"):
                explore.build(session, timer)
                review.build(session, explore)
            with gr.Tab("Convert & fine-tune", id="finetune"):
                finetune.build(session, timer)
            with gr.Tab("Cross-model control", id="cmc"):
                cmc.build(session, timer)
            with gr.Tab("Jobs", id="jobs"):
                jobs.build(session, timer)

        others = [explore.maps, cmc.template, cmc.hosts, cmc.data, cmc.delta, jobs.table, jobs.detail]

        def refresh_others(state: Session) -> list[Any]:
            return explore.refresh(state) + cmc.refresh(state) + jobs.refresh(state)

        def on_load(state: Session) -> list[Any]:
            return project.project_values(state) + refresh_others(state)

        demo.load(on_load, session, project.outputs + others, api_visibility="private")
        for trigger in project.project_changes:
            trigger.then(refresh_others, session, others, api_visibility="private")
    demo.queue(default_concurrency_limit=4)
    demo.tokmap_context = ctx  # tests and tools reach the store through the app they launched
    return demo


def launch_app(demo: gr.Blocks | None = None, host: str | None = None, port: int | None = None,
               **launch_kwargs: Any) -> gr.Blocks:
    """Launch on ``host:port`` (default 127.0.0.1:7860, or TOKMAP_HOST / TOKMAP_PORT)."""
    demo = demo or build_app()
    host = host or os.environ.get("TOKMAP_HOST", "127.0.0.1")
    port = port or int(os.environ.get("TOKMAP_PORT", "7860"))
    launch_kwargs.setdefault("max_file_size", "500mb")
    demo.launch(server_name=host, server_port=port, footer_links=["api", "settings"], **launch_kwargs)
    return demo
