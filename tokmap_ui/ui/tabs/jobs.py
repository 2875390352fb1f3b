"""Jobs tab: every job of the workspace with status, progress, log tail, artifacts, cancel and resume.

Jobs live in the store and run as their own processes (:mod:`tokmap_ui.jobs`), so the list
survives a page reload and an app restart (at start the app marks jobs whose process died as
``interrupted``; they can be resumed). The app's ``gr.Timer`` polls; each poll also starts
queued jobs and notices dead ones (:func:`tokmap_ui.jobs.refresh`).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from tokmap_ui.errors import TokmapError
from tokmap_ui.ui.render import job_markdown, jobs_frame
from tokmap_ui.ui.state import AppContext, Session

LOG_LINES = 25


class JobsTab:
    """Widgets and handlers of the Jobs tab."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def list_jobs(self, session: Session) -> tuple[Any, str]:
        """All jobs, newest first, and the details of the selected one."""
        from tokmap_ui.jobs import refresh

        jobs = refresh(self.ctx.store)
        return jobs_frame(jobs), self.details(session)

    def tick(self, session: Session) -> tuple[Any, Any]:
        """Timer tick: :meth:`list_jobs`, or nothing when no job and no selection changed."""
        from tokmap_ui.jobs import refresh

        signature = ([(j.id, j.status.value, j.updated) for j in refresh(self.ctx.store)], session.job)
        if session.seen.get("jobs") == signature:
            return gr.skip(), gr.skip()
        session.seen["jobs"] = signature
        return self.list_jobs(session)

    def details(self, session: Session) -> str:
        from tokmap_ui.jobs import tail

        if session.job is None:
            return "*Select a job in the table (or type its id) to see its log.*"
        try:
            return job_markdown(self.ctx.store.get_job(session.job), tail(self.ctx.store, session.job, LOG_LINES))
        except TokmapError as err:
            return f"⚠ {err}"

    def select(self, job_id: float | None, session: Session) -> tuple[Session, str]:
        """Show one job's details."""
        session.job = int(job_id) if job_id is not None else None
        return session, self.details(session)

    def pick_row(self, session: Session, evt: gr.SelectData) -> tuple[Session, Any, str]:
        row = evt.row_value if evt.row_value is not None else []
        job_id = int(row[0]) if row else None
        session, text = self.select(job_id, session)
        return session, job_id, text

    def cancel(self, job_id: float | None, session: Session) -> tuple[Session, str]:
        """Cancel a queued or running job."""
        from tokmap_ui.jobs import cancel

        try:
            job = cancel(self.ctx.store, int(self._id(job_id)))
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        session.job = job.id
        return session, self.details(session)

    def resume(self, job_id: float | None, session: Session) -> tuple[Session, str]:
        """Queue a cancelled, interrupted or failed job again (from its checkpoint when it has one)."""
        from tokmap_ui.jobs import resume

        try:
            job = resume(self.ctx.store, int(self._id(job_id)))
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        session.job = job.id
        return session, self.details(session)

    @staticmethod
    def _id(job_id: float | None) -> int:
        if job_id is None:
            raise gr.Error("Select a job first (click its row or type its id).")
        return int(job_id)

    def build(self, session: gr.State, timer: gr.Timer) -> None:
        gr.Markdown("Background jobs of the workspace. They keep running when you close or reload the page; "
                    "after an app restart, jobs whose process died show as *interrupted* and can be resumed.")
        self.table = gr.Dataframe(jobs_frame([]), interactive=False, max_height=360, elem_id="jobs-table", wrap=True)
        with gr.Row():
            job_id = gr.Number(label="Job id", precision=0, elem_id="jobs-id", scale=1)
            show = gr.Button("Show", scale=1)
            cancel = gr.Button("Cancel job", variant="stop", scale=1, elem_id="jobs-cancel")
            resume = gr.Button("Resume job", scale=1, elem_id="jobs-resume")
            reload = gr.Button("Refresh", scale=1)
        self.detail = gr.Markdown(elem_id="jobs-detail")
        timer.tick(self.tick, session, [self.table, self.detail], api_name="poll_jobs",
                   api_visibility="private", show_progress="hidden")
        show.click(self.select, [job_id, session], [session, self.detail], api_name="job_details")
        self.table.select(self.pick_row, session, [session, job_id, self.detail], api_visibility="private")
        cancel.click(self.cancel, [job_id, session], [session, self.detail], api_name="cancel_job")
        resume.click(self.resume, [job_id, session], [session, self.detail], api_name="resume_job")
        reload.click(self.list_jobs, session, [self.table, self.detail], api_name="list_jobs")

    def refresh(self, session: Session) -> list[Any]:
        return list(self.list_jobs(session))
