"""Cross-model control tab: train a delta (job), add hosts, PM-MinED compatibility, and the arena.

* Delta training runs ``delta-train`` as a job (:func:`tokmap_ui.workbench.start_delta_job`) on a
  template model and JSONL data (the demo's unlearning task, or an upload).
* Hosts are the project's ``host`` models (the demo has both tiny English LMs; a zip of another
  model folder can be added). The compatibility report maps each host's vocabulary onto the
  template's (= the delta's) with PM-MinED (:mod:`tokmap_ui.mapping.pmmined`).
* The arena streams, for one prompt, every host alone and every host + delta side by side
  (:class:`tokmap_ui.cmc.decode.CmcPair`: α = 0 is the host alone, exactly), then shows per
  generated token what the delta boosted or suppressed (``explain``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from tokmap_ui.errors import TokmapError
from tokmap_ui.project import Role, add_input, artifact_choices, role_artifacts
from tokmap_ui.store import Artifact, JobStatus
from tokmap_ui.ui.render import arena_html, compat_markdown, job_fraction, token_shift_html
from tokmap_ui.ui.state import AppContext, Session
from tokmap_ui.workbench import job_option, start_delta_job

EXPLAIN_K = 5


class CmcTab:
    """Widgets and handlers of the Cross-model control tab."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    # ------------------------------------------------------------------ lookups
    def models(self, session: Session) -> list[Artifact]:
        """Models of the project usable as template or host (causal LMs; sources and hosts)."""
        seen, out = set(), []
        for role in (Role.HOST, Role.SOURCE):
            for a in role_artifacts(self.ctx.store, session.project, role):
                if a.kind == "model" and a.path not in seen and "minilm" not in a.name.lower():
                    seen.add(a.path)
                    out.append(a)
        return out

    def deltas(self, session: Session) -> list[tuple[str, str]]:
        """Finished delta runs of the project: (label, delta folder), newest first."""
        out = []
        for job in self.ctx.store.list_jobs(session.project):
            folder = Path(job_option(job, "--out") or "") / "delta"
            if job.kind == "delta-train" and job.status is JobStatus.SUCCEEDED and (folder / "config.json").is_file():
                out.append((f"job {job.id}: {Path(job_option(job, '--template') or '').name} "
                            f"{job_option(job, '--task')} {job_option(job, '--steps')} steps", str(folder)))
        return out

    def _artifact(self, artifact_id: Any) -> Artifact:
        try:
            return self.ctx.store.get_artifact(int(artifact_id))
        except (TokmapError, TypeError, ValueError):
            raise gr.Error("Pick a model from the list first.") from None

    def _delta(self, folder: str) -> tuple[Any, Any, dict]:
        from tokmap_ui.io.deltas import load_delta

        stamp = (Path(folder) / "model.safetensors").stat().st_mtime_ns
        return self.ctx.cache.get(f"delta:{folder}:{stamp}", lambda: load_delta(folder))

    def _pair(self, host: Artifact, delta_folder: str) -> Any:
        from tokmap_ui.cmc.decode import CmcPair

        def build() -> Any:
            model, tokenizer = self.ctx.model(host.path, host.sha256)
            delta, delta_tok, _ = self._delta(delta_folder)
            return CmcPair(model, tokenizer, delta, delta_tok, self._host_map(host, delta_tok))

        return self.ctx.cache.get(f"pair:{host.sha256}:{delta_folder}", build)

    def _host_map(self, host: Artifact, delta_tokenizer: Any) -> Any:
        """The PM-MinED host → delta map, or None when the host shares the delta's vocabulary."""
        from tokmap_ui.mapping.pmmined import build_pmmined_map_cached
        from tokmap_ui.vocab import Vocabulary

        host_vocab = self.ctx.vocab(host)
        delta_vocab = Vocabulary.from_tokenizer(delta_tokenizer, name="delta")
        if host_vocab.sha256 == delta_vocab.sha256:
            return None
        return build_pmmined_map_cached(host_vocab, delta_vocab)

    # ------------------------------------------------------------------ handlers
    def train_delta(self, template_id: Any, data_id: Any, task: str, steps: float,
                    session: Session) -> tuple[Session, str]:
        """Start a delta-training job."""
        template, data = self._artifact(template_id), self._artifact(data_id)
        try:
            session.delta_job = start_delta_job(self.ctx.store, session.project, template.path, data.path, task,
                                                int(steps))
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        return session, f"delta job {session.delta_job} started ({task}, {int(steps)} steps on {template.name})"

    def poll(self, session: Session) -> tuple[Session, str, Any]:
        """Timer tick: the delta job's progress; when it succeeds, offer the new delta."""
        if session.delta_job is None:
            return session, gr.update(), gr.update()
        job = self.ctx.store.get_job(session.delta_job)
        frac = job_fraction(job)
        loss = job.progress.get("loss")
        status = (f"delta job {job.id}: {job.status.value}" + (f" {frac:.0%}" if frac is not None else "")
                  + (f", loss {loss:.3f}" if isinstance(loss, float) else "") + (f" — {job.error}" if job.error else ""))
        if not job.status.finished:
            return session, status, gr.update()
        job_seen, sent = session.seen.get("delta", (None, 0))
        sent = sent if job_seen == job.id else 0
        if sent >= 3:  # offered on three ticks (in case one is lost); then leave the user's choice alone
            return session, gr.skip(), gr.skip()
        session.seen["delta"] = (job.id, sent + 1)
        choices = self.deltas(session)
        folder = str(Path(job_option(job, "--out") or "") / "delta")
        value = folder if folder in {c[1] for c in choices} else (choices[0][1] if choices else None)
        return session, status, gr.update(choices=choices, value=value)

    def add_host(self, path: str | None, session: Session) -> Any:
        """Add an uploaded model (zip of an HF folder) as a host."""
        if not path:
            raise gr.Error("Upload a zip of a model folder first.")
        try:
            add_input(self.ctx.store, session.project, Role.HOST, path)
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        return self.refresh(session)[1]

    def compatibility(self, template_id: Any, host_ids: list[Any], session: Session) -> str:
        """PM-MinED compatibility of each host with the template's (= the delta's) vocabulary."""
        from tokmap_ui.mapping.pmmined import build_pmmined_map_cached, compatibility_report

        template = self._artifact(template_id)
        if not host_ids:
            raise gr.Error("Tick at least one host.")
        parts = []
        for host in map(self._artifact, host_ids):
            host_vocab, delta_vocab = self.ctx.vocab(host), self.ctx.vocab(template)
            report = compatibility_report(build_pmmined_map_cached(host_vocab, delta_vocab), host_vocab, delta_vocab)
            parts.append(compat_markdown(host.name, report))
        return "\n\n".join(parts)

    def arena(self, prompt: str, delta_folder: str | None, host_ids: list[Any], alpha: float, temperature: float,
              top_p: float, top_k: float, max_new: float, seed: float, instruct: bool):
        """Stream every host alone and with the delta side by side; then the per-token delta view."""
        from tokmap_ui.cmc.arena import ArenaConfig, run_arena
        from tokmap_ui.cmc.decode import GenerateConfig
        from tokmap_ui.train.delta_data import format_prompt

        if not delta_folder:
            raise gr.Error("Pick a trained delta (train one above; it takes about a minute on the demo).")
        if not host_ids:
            raise gr.Error("Tick at least one host.")
        try:
            pairs = {host.name: self._pair(host, delta_folder) for host in map(self._artifact, host_ids)}
            _, tokenizer, info = self._delta(delta_folder)
            text = format_prompt(tokenizer, prompt or "", prompt_format=info.get("prompt_format", "auto")) \
                if instruct else prompt or ""
            config = ArenaConfig(alpha=float(alpha), explain_k=EXPLAIN_K, generate=GenerateConfig(
                max_new_tokens=int(max_new), temperature=float(temperature), top_p=float(top_p), top_k=int(top_k),
                seed=int(seed)))
            for state in run_arena(pairs, text, config):
                yield arena_html(text, state.panels), gr.update()
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        yield arena_html(text, state.panels), "".join(token_shift_html(p.host, p.steps) for p in state.panels if p.steps)

    # ------------------------------------------------------------------ layout
    def build(self, session: gr.State, timer: gr.Timer) -> None:
        gr.Markdown("Train a small **delta** next to a frozen template model, then steer other **host** models "
                    "with it, even ones with another vocabulary (PM-MinED token map).")
        with gr.Row(equal_height=False):
            with gr.Column():
                gr.Markdown("### 1. Train a delta (job)")
                self.template = gr.Dropdown(label="Template model", choices=[], elem_id="cmc-template", allow_custom_value=True)
                self.data = gr.Dropdown(label="Training data (JSONL)", choices=[], elem_id="cmc-data",
                                        allow_custom_value=True)
                data_file = gr.File(label="…or upload JSONL", file_types=[".jsonl", ".json", ".txt"], height=120)
                with gr.Row():
                    task = gr.Radio(["unlearn", "instruct"], value="unlearn", label="Task")
                    steps = gr.Number(30, label="Steps", precision=0, minimum=1, elem_id="cmc-steps")
                train = gr.Button("Train delta (job)", variant="primary", elem_id="cmc-train")
                self.status = gr.Textbox(label="Status", interactive=False, elem_id="cmc-status")
            with gr.Column():
                gr.Markdown("### 2. Hosts and compatibility")
                self.hosts = gr.Dropdown(label="Hosts", choices=[], multiselect=True, elem_id="cmc-hosts",
                                         allow_custom_value=True)
                host_file = gr.File(label="Add a host (zip of a model folder)", file_types=[".zip"], height=120)
                compat = gr.Button("PM-MinED compatibility report")
                self.report = gr.Markdown(elem_id="cmc-compat")
        gr.Markdown("### 3. Arena")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=280):
                self.delta = gr.Dropdown(label="Delta", choices=[], elem_id="cmc-delta", allow_custom_value=True)
                prompt = gr.Textbox("And God said", label="Prompt", lines=2, elem_id="cmc-prompt")
                alpha = gr.Slider(-2.0, 4.0, value=1.0, step=0.1, label="α (delta strength; 0 = host alone)")
                with gr.Accordion("Sampling", open=False):
                    temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="Temperature (0 = greedy)")
                    top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p")
                    top_k = gr.Number(0, label="Top-k (0 = off)", precision=0, minimum=0)
                    max_new = gr.Number(32, label="New tokens", precision=0, minimum=1)
                    seed = gr.Number(0, label="Seed", precision=0)
                    instruct = gr.Checkbox(False, label="Wrap the prompt in the delta's instruction format")
                with gr.Row():
                    run = gr.Button("Run arena", variant="primary", elem_id="cmc-run")
                    stop = gr.Button("Stop", variant="stop")
            with gr.Column(scale=3):
                outputs = gr.HTML(elem_id="arena")
                shifts = gr.HTML(elem_id="arena-shifts")
        train.click(self.train_delta, [self.template, self.data, task, steps, session], [session, self.status],
                    api_name="train_delta", show_progress_on=self.status)
        data_file.upload(self.add_data, [data_file, session], self.data, api_visibility="private")
        host_file.upload(self.add_host, [host_file, session], self.hosts, api_visibility="private")
        compat.click(self.compatibility, [self.template, self.hosts, session], self.report, api_name="compatibility")
        event = run.click(self.arena, [prompt, self.delta, self.hosts, alpha, temperature, top_p, top_k, max_new, seed,
                                       instruct], [outputs, shifts], api_name="arena", show_progress_on=shifts)
        stop.click(None, None, None, cancels=[event])
        timer.tick(self.poll, session, [session, self.status, self.delta], api_visibility="private",
                   show_progress="hidden")

    def add_data(self, path: str | None, session: Session) -> Any:
        """Add uploaded JSONL as delta-training data (checked line by line)."""
        if not path:
            raise gr.Error("Upload a JSONL file first.")
        try:
            artifact = add_input(self.ctx.store, session.project, Role.DELTA_DATA, path)
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        return gr.update(choices=artifact_choices(role_artifacts(self.ctx.store, session.project, Role.DELTA_DATA)),
                         value=artifact.id)

    def refresh(self, session: Session) -> list[Any]:
        """On page load or project change: templates, hosts, data and deltas of the project."""
        models = self.models(session)
        hosts = [a for a in role_artifacts(self.ctx.store, session.project, Role.HOST) if a.kind == "model"]
        data = role_artifacts(self.ctx.store, session.project, Role.DELTA_DATA)
        deltas = self.deltas(session)
        return [gr.update(choices=artifact_choices(models), value=models[0].id if models else None),
                gr.update(choices=artifact_choices(hosts), value=[a.id for a in hosts]),
                gr.update(choices=artifact_choices(data), value=data[-1].id if data else None),
                gr.update(choices=deltas, value=deltas[0][1] if deltas else None)]
