"""Convert & fine-tune tab: compare init methods by converting and fine-tuning one run per method.

Each method is one ``init-run`` job (:func:`tokmap_ui.workbench.start_init_runs`): build the map
with that method (or take the open map with its review decisions: ``reviewed``), convert the
model, fine-tune it on the project's target text. The app's timer redraws the loss curves of all
runs on one plot and the results table (loss per byte before and after); the start button's
progress shows in the status box only, so nothing covers the plot. Runs can be cancelled and
resumed (from their last checkpoint), their models downloaded as a zip or pushed to the hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from tokmap_ui.errors import TokmapError
from tokmap_ui.mapping.baselines import MapMethod
from tokmap_ui.store import Job, JobStatus
from tokmap_ui.ui.render import job_fraction, loss_figure, loss_frame, results_frame
from tokmap_ui.ui.state import AppContext, Session
from tokmap_ui.workbench import InitRunConfig, job_option, start_init_runs

METHODS = [m.value for m in MapMethod] + ["reviewed"]
RECENT_RUNS = 8


def run_label(job: Job) -> str:
    return f"#{job.id} {job_option(job, '--method') or job.kind}"


def run_summary(job: Job) -> dict[str, Any]:
    """One row of the results table from a run's progress record."""
    evals = job.progress.get("evals") or []
    before = evals[0][1] if evals and evals[0][0] in (0, None) else None
    after = evals[-1][1] if len(evals) > 1 else None
    p = job.progress
    steps = f"{p.get('step', 0)}/{p['total_steps']}" if p.get("total_steps") else ""
    return {"job": job.id, "method": job_option(job, "--method") or "", "status": job.status.value,
            "steps": steps, "before": before, "after": after}


def model_folder(job: Job) -> Path | None:
    """The run's fine-tuned model, else its converted model, else None."""
    out = job_option(job, "--out")
    if not out:
        return None
    for candidate in (Path(out) / "finetune" / "model", Path(out) / "converted"):
        if (candidate / "config.json").is_file():
            return candidate
    return None


class FinetuneTab:
    """Widgets and handlers of the Convert & fine-tune tab."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def runs(self, session: Session) -> list[Job]:
        """The session's comparison, or (after a reload) the project's most recent runs."""
        store = self.ctx.store
        if session.init_jobs:
            return [store.get_job(i) for i in session.init_jobs]
        jobs = [j for j in store.list_jobs(session.project) if j.kind == "compare-init"]
        return sorted(jobs[:RECENT_RUNS], key=lambda j: j.id)

    # ------------------------------------------------------------------ handlers
    def start(self, methods: list[str], steps: float, batch: float, block: float, lr: float,
              session: Session) -> tuple[Session, str]:
        """Start one conversion + fine-tune job per chosen init method."""
        try:
            config = InitRunConfig(steps=int(steps), batch_size=int(batch), block_size=int(block), lr=float(lr))
            reviewed = self._reviewed_map(session) if "reviewed" in (methods or []) else None
            session.init_jobs = start_init_runs(self.ctx.store, session.project, list(methods or []), config,
                                                reviewed)
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        return session, f"started jobs {', '.join(map(str, session.init_jobs))}: {', '.join(methods)}"

    def _reviewed_map(self, session: Session) -> Path:
        """The open map with its review decisions applied, written for the job to read."""
        from tokmap_ui.io.tokenmaps import save_token_map

        if session.map_id is None:
            raise gr.Error("'reviewed' uses the map open in Map & explore: open or build one first.")
        view = self.ctx.map_view(session.map_id)
        with view.lock:
            effective = view.reviewed.effective_token_map()
        folder = self.ctx.store.project_dir(session.project) / "reviewed-maps"
        return save_token_map(effective, folder / f"map{session.map_id}-event{view.reviewed.last_event_id}.json.gz")

    def poll(self, session: Session) -> tuple[Any, Any, str]:
        """Timer tick: every run's loss curve on one plot, the results table, a status line."""
        from tokmap_ui.jobs import refresh

        refresh(self.ctx.store)
        runs = self.runs(session)
        signature = [(j.id, j.status.value, j.updated) for j in runs]
        if session.seen.get("finetune") == signature:
            return gr.skip(), gr.skip(), gr.skip()  # nothing changed: do not resend the figure
        session.seen["finetune"] = signature
        if not runs:
            return loss_figure(loss_frame([])), results_frame([]), "No runs yet."
        curves = loss_figure(loss_frame([(run_label(j), j.progress.get("losses") or []) for j in runs]))
        active = [j for j in runs if not j.status.finished]
        parts = [f"{run_label(j)}: {j.status.value}" + (f" {f:.0%}" if (f := job_fraction(j)) is not None else "")
                 for j in runs]
        status = ("running: " if active else "finished: ") + "; ".join(parts)
        return curves, results_frame([run_summary(j) for j in runs]), status

    def cancel(self, session: Session) -> str:
        """Cancel every queued or running run of the comparison."""
        from tokmap_ui.jobs import cancel

        done = [cancel(self.ctx.store, j.id).id for j in self.runs(session) if not j.status.finished]
        return f"cancelled jobs {', '.join(map(str, done))}" if done else "no run is queued or running"

    def resume(self, session: Session) -> str:
        """Queue cancelled, interrupted or failed runs again; each continues from its checkpoint."""
        from tokmap_ui.jobs import resume

        again = [resume(self.ctx.store, j.id).id for j in self.runs(session)
                 if j.status in (JobStatus.CANCELLED, JobStatus.INTERRUPTED, JobStatus.FAILED)]
        return f"resumed jobs {', '.join(map(str, again))}" if again else "no run to resume"

    def download(self, job_id: float | None, session: Session) -> str:
        """Zip a run's model (fine-tuned if finished, else converted) for download."""
        from tokmap_ui.io.models import zip_model_dir

        folder = self._model(job_id)
        dest = self.ctx.exports / f"job{int(job_id)}-{folder.parent.name}-{folder.name}.zip"
        try:
            return str(zip_model_dir(folder, dest))
        except TokmapError as err:
            raise gr.Error(str(err)) from None

    def push(self, job_id: float | None, repo_id: str, token: str) -> str:
        """Push a run's model to the hub (online only; offline this fails at once with a message)."""
        from tokmap_ui.io.hub_upload import push_model_dir

        try:
            return f"pushed to {push_model_dir(self._model(job_id), repo_id, token)}"
        except TokmapError as err:
            raise gr.Error(str(err)) from None

    def _model(self, job_id: float | None) -> Path:
        if job_id is None:
            raise gr.Error("Type the job id of a run (see the results table).")
        try:
            folder = model_folder(self.ctx.store.get_job(int(job_id)))
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        if folder is None:
            raise gr.Error(f"job {int(job_id)} has no model yet: wait until its conversion has finished.")
        return folder

    # ------------------------------------------------------------------ layout
    def build(self, session: gr.State, timer: gr.Timer) -> None:
        gr.Markdown("Convert the project's source model to the target tokenizer with each init method, fine-tune "
                    "each on the target text, and compare. Every run is a background job (see Jobs).")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                methods = gr.CheckboxGroup(METHODS, value=["tiktotok", "fvt", "random"], label="Init methods",
                                           elem_id="init-methods")
                steps = gr.Number(60, label="Fine-tune steps per run", precision=0, minimum=1, elem_id="ft-steps")
                with gr.Accordion("Training settings", open=False):
                    batch = gr.Number(4, label="Batch (blocks)", precision=0, minimum=1)
                    block = gr.Number(64, label="Block (tokens)", precision=0, minimum=8)
                    lr = gr.Number(5e-4, label="Learning rate")
                with gr.Row():
                    start = gr.Button("Start runs", variant="primary", elem_id="ft-start")
                    cancel = gr.Button("Cancel runs", variant="stop", elem_id="ft-cancel")
                    resume = gr.Button("Resume", elem_id="ft-resume")
                self.status = gr.Textbox(label="Status", interactive=False, lines=3, elem_id="ft-status")
            with gr.Column(scale=2):
                # gr.Plot, not gr.LinePlot: the native plot fixes its colour legend at the first value, so
                # runs started later were never drawn.
                self.curves = gr.Plot(label="Training loss of all runs", elem_id="ft-curves")
                self.results = gr.Dataframe(results_frame([]), label="Results (validation loss per byte)", interactive=False,
                                            elem_id="ft-results")
        with gr.Accordion("Download or push a run's model", open=False):
            with gr.Row():
                job_id = gr.Number(label="Job id", precision=0)
                zip_button = gr.Button("Zip model")
                zipped = gr.File(label="Model zip", interactive=False)
            with gr.Row():
                repo = gr.Textbox(label="Hub repo id (owner/name)")
                token = gr.Textbox(label="Hub token (write)", type="password")
                push = gr.Button("Push to hub (online only)")
            pushed = gr.Markdown()
        start.click(self.start, [methods, steps, batch, block, lr, session], [session, self.status],
                    api_name="start_finetune", show_progress_on=self.status)
        cancel.click(self.cancel, session, self.status, api_name="cancel_finetune", show_progress_on=self.status)
        resume.click(self.resume, session, self.status, api_name="resume_finetune", show_progress_on=self.status)
        zip_button.click(self.download, [job_id, session], zipped, api_name="download_model")
        push.click(self.push, [job_id, repo, token], pushed, api_name="push_model")
        timer.tick(self.poll, session, [self.curves, self.results, self.status], api_visibility="private",
                   show_progress="hidden")
