"""Project & data tab: open or create a project; pick, upload or train its inputs; inspect each one.

Every input (source model or tokenizer, target tokenizer, dictionary, training and validation
text) has a panel: a dropdown of the project's artifacts of that role, a bundled demo-kit choice,
an upload (file, or a zip of a folder), for tokenizers a hub id, and for the target a tokenizer
trained from uploaded text. A bad file raises the core's own message via ``gr.Error`` and
changes nothing. Handlers are short adapters: widgets → one core call (:mod:`tokmap_ui.project`)
→ formatting (:mod:`tokmap_ui.ui.render`).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from tokmap_ui.errors import TokmapError
from tokmap_ui.presets import apply_preset, preset_choices, preset_markdown
from tokmap_ui.project import (Role, add_input, add_kit_item, artifact_choices, kit_items, role_artifacts, select,
                               selected, train_target_tokenizer)
from tokmap_ui.tokenizer_training import TokenizerAlgorithm, TokenizerTrainingConfig
from tokmap_ui.ui.render import artifacts_frame, code_block
from tokmap_ui.ui.state import AppContext, Session

PANELS = (Role.SOURCE, Role.TARGET, Role.DICTIONARY, Role.TRAIN_TEXT, Role.VALID_TEXT)
TITLES = {Role.SOURCE: "Source model or tokenizer", Role.TARGET: "Target tokenizer",
          Role.DICTIONARY: "Bilingual dictionary", Role.TRAIN_TEXT: "Target-language training text",
          Role.VALID_TEXT: "Target-language validation text"}
FILE_TYPES = {Role.SOURCE: [".zip of a folder", ".json", ".model", ".txt"],
              Role.TARGET: [".zip of a folder", ".json", ".model", ".txt"],
              Role.DICTIONARY: [".tsv", ".csv", ".txt", ".json"], Role.TRAIN_TEXT: [".txt"],
              Role.VALID_TEXT: [".txt"]}


def inspect_tokenizer_markdown(path_or_id: str | None) -> str:
    """Inspection summary of an uploaded tokenizer file or a hub id, as Markdown."""
    from tokmap_ui.io.tokenizers import inspect_tokenizer_file

    if not path_or_id:
        raise gr.Error("Upload a tokenizer file (.json, .model, vocab.txt, .zip) or type a hub id first.")
    try:
        return code_block(inspect_tokenizer_file(path_or_id).to_text())
    except TokmapError as err:
        raise gr.Error(str(err)) from None


def inspect_dictionary_markdown(path: str | None) -> str:
    """Inspection summary of an uploaded dictionary, as Markdown."""
    from tokmap_ui.io.dictionaries import inspect_dictionary_file

    if not path:
        raise gr.Error("Upload a dictionary file (.tsv, .csv, .txt, .json) first.")
    try:
        return code_block(inspect_dictionary_file(path).to_text())
    except TokmapError as err:
        raise gr.Error(str(err)) from None


class ProjectTab:
    """Widgets and handlers of the Project & data tab (``ctx`` holds the store and the cache)."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    # ------------------------------------------------------------------ formatting helpers
    def panel_values(self, project: str, role: Role) -> tuple[Any, str]:
        """(dropdown update, summary Markdown) of one role's panel."""
        store = self.ctx.store
        current = selected(store, project, role)
        choices = artifact_choices(role_artifacts(store, project, role))
        if current is None:
            return gr.update(choices=choices, value=None), f"*No {role.value} yet: pick a bundled one or upload.*"
        try:
            summary = code_block(self.ctx.summary(current))
        except TokmapError as err:
            summary = f"⚠ {err}"
        return gr.update(choices=choices, value=current.id), summary

    def project_values(self, session: Session) -> list[Any]:
        """Everything the tab shows for the session's project, in the order of :meth:`outputs`."""
        store = self.ctx.store
        project = store.get_project(session.project)
        chosen = [a.id for role in Role if (a := selected(store, project, role)) is not None]
        values: list[Any] = [session, gr.update(choices=[p.name for p in store.list_projects()], value=project.name),
                             artifacts_frame(store.list_artifacts(project), chosen)]
        for role in PANELS:
            values += list(self.panel_values(project.name, role))
        return values

    # ------------------------------------------------------------------ handlers
    def open_project(self, name: str, session: Session) -> list[Any]:
        """Switch this session to project ``name``."""
        try:
            session.project = self.ctx.store.get_project(name).name
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        session.map_id = session.entry = None
        return self.project_values(session)

    def create_project(self, name: str, session: Session) -> list[Any]:
        """Create a project (empty: add inputs below) and open it."""
        try:
            session.project = self.ctx.store.create_project(name or "").name
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        session.map_id = session.entry = None
        return self.project_values(session)

    def choose(self, role: str, artifact_id: int | None, session: Session) -> list[Any]:
        """Make one of the project's artifacts the selected input of ``role``."""
        if artifact_id is not None:
            try:
                select(self.ctx.store, session.project, role, int(artifact_id))
            except TokmapError as err:
                raise gr.Error(str(err)) from None
        return self.project_values(session)

    def add_upload(self, role: str, path: str | None, session: Session) -> list[Any]:
        """Check an uploaded file (or zip of a folder) for ``role``, copy it in, register and select it."""
        if not path:
            raise gr.Error("Choose a file to upload first.")
        try:
            add_input(self.ctx.store, session.project, role, path)
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        return self.project_values(session)

    def add_hub(self, role: str, hub_id: str, session: Session) -> list[Any]:
        """Add a tokenizer by hub id (needs the network; offline mode fails at once with a message)."""
        from tokmap_ui.io.tokenizers import load_tokenizer
        from tokmap_ui.io.workspace_files import save_tokenizer_dir

        if not (hub_id or "").strip():
            raise gr.Error("Type a hub id such as 'gpt2' first.")
        try:
            tokenizer = load_tokenizer(hub_id.strip())
            folder = save_tokenizer_dir(tokenizer, self.ctx.store.project_dir(session.project) / "inputs" / role /
                                        hub_id.strip().replace("/", "__"))
            add_input(self.ctx.store, session.project, role, folder, name=hub_id.strip(), copy=False)
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        return self.project_values(session)

    def add_bundled(self, role: str, name: str | None, session: Session) -> list[Any]:
        """Use a bundled demo-kit item for ``role``."""
        if not name:
            raise gr.Error("Pick a bundled item first.")
        try:
            add_kit_item(self.ctx.store, session.project, role, name)
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        return self.project_values(session)

    def use_preset(self, key: str | None, session: Session) -> list[Any]:
        """Fill every input of the project from the demo kit for a language pair (en→nl, en→fy via nl, nl→fy)."""
        if not key:
            raise gr.Error("Pick a language pair first.")
        try:
            apply_preset(self.ctx.store, session.project, key)
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        return self.project_values(session)

    def train_tokenizer(self, path: str | None, vocab_size: float, algorithm: str, session: Session) -> list[Any]:
        """Train a target tokenizer on uploaded text and select it."""
        if not path:
            raise gr.Error("Upload a text file (one sentence or paragraph per line) to train on.")
        try:
            config = TokenizerTrainingConfig(algorithm=algorithm, vocab_size=int(vocab_size))
            train_target_tokenizer(self.ctx.store, session.project, path, config)
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        return self.project_values(session)

    # ------------------------------------------------------------------ layout
    def build(self, session: gr.State) -> None:
        gr.Markdown("Everything lives in a **project** in the workspace (`TOKMAP_HOME`). The demo project uses "
                    "the bundled kit, so every tab works with no upload.")
        with gr.Row():
            self.project = gr.Dropdown(label="Project", choices=[], interactive=True, allow_custom_value=True, scale=2, elem_id="project-name")
            self.new_name = gr.Textbox(label="New project", placeholder="name", scale=2)
            create = gr.Button("Create project", scale=1)
        with gr.Row():
            self.preset = gr.Dropdown(preset_choices(), label="Language pair (demo kit)", value=None, scale=2,
                                      elem_id="preset")
            self.use_preset_button = gr.Button("Use these inputs", scale=1, elem_id="use-preset")
        self.preset_info = gr.Markdown(preset_markdown(None), elem_id="preset-info")
        self.panels: dict[Role, dict[str, Any]] = {}
        for group in ((Role.SOURCE,), (Role.TARGET,)), ((Role.DICTIONARY,), (Role.TRAIN_TEXT, Role.VALID_TEXT)):
            with gr.Row(equal_height=False):
                for column in group:
                    with gr.Column():
                        for role in column:
                            self.panels[role] = self._panel(role)
        with gr.Accordion("All artifacts of the project", open=False):
            self.table = gr.Dataframe(artifacts_frame([], []), interactive=False, wrap=True, max_height=320,
                                      elem_id="artifacts")
        with gr.Accordion("Inspect any tokenizer or dictionary file (without adding it)", open=False):
            with gr.Row():
                tok_file = gr.File(label="Tokenizer file or zip", file_types=[".json", ".model", ".txt", ".zip"],
                                   type="filepath", height=120)
                dict_file = gr.File(label="Dictionary", file_types=[".tsv", ".csv", ".txt", ".json"],
                                    type="filepath", height=120)
            with gr.Row():
                tok_report, dict_report = gr.Markdown(), gr.Markdown()
        tok_file.upload(inspect_tokenizer_markdown, tok_file, tok_report, api_name="inspect_tokenizer")
        dict_file.upload(inspect_dictionary_markdown, dict_file, dict_report, api_name="inspect_dictionary")
        self.outputs = [session, self.project, self.table]
        for role in PANELS:
            self.outputs += [self.panels[role]["pick"], self.panels[role]["summary"]]
        self._wire(session, create)

    def _panel(self, role: Role) -> dict[str, Any]:
        parts: dict[str, Any] = {"role": gr.Textbox(role.value, visible=False)}
        gr.Markdown(f"### {TITLES[role]}")
        parts["pick"] = gr.Dropdown(label="In this project", choices=[], interactive=True, allow_custom_value=True,
                                    elem_id=f"pick-{role.value}")
        bundled = [i.name for i in kit_items() if i.role is role]
        with gr.Row():
            parts["bundled"] = gr.Dropdown(bundled, label="Bundled (demo kit)", value=None, scale=3,
                                           allow_custom_value=True)
            parts["add_bundled"] = gr.Button("Use", scale=1, size="sm")
        # No file_types filter: the public add_input endpoint takes every role, and the core's loaders
        # name what is wrong with a file far better than a type filter can.
        parts["file"] = gr.File(label=f"Upload ({', '.join(FILE_TYPES[role])})", type="filepath", height=120,
                                elem_id=f"upload-{role.value}")
        if role in (Role.SOURCE, Role.TARGET):
            with gr.Row():
                parts["hub"] = gr.Textbox(label="…or a hub id (online only)", placeholder="gpt2", scale=3)
                parts["add_hub"] = gr.Button("Fetch", scale=1, size="sm")
        if role is Role.TARGET:
            with gr.Accordion("…or train a tokenizer on uploaded text", open=False):
                parts["train_file"] = gr.File(label="Text (.txt, one line per sentence)", file_types=[".txt"],
                                              type="filepath", height=120)
                with gr.Row():
                    parts["vocab"] = gr.Number(16000, label="Vocabulary size", precision=0, minimum=100)
                    parts["algorithm"] = gr.Dropdown(TokenizerAlgorithm.choices(), value="bpe", label="Algorithm")
                parts["train"] = gr.Button("Train tokenizer")
        parts["summary"] = gr.Markdown(elem_id=f"summary-{role.value}")
        return parts

    def _wire(self, session: gr.State, create: gr.Button) -> None:
        out = self.outputs
        self.project_changes = [
            self.project.input(self.open_project, [self.project, session], out, api_name="open_project"),
            create.click(self.create_project, [self.new_name, session], out, api_name="create_project")]
        for n, (role, p) in enumerate(self.panels.items()):
            # The source panel's events carry the public API names (role is a parameter); the others are UI-only.
            named = (lambda name: {"api_name": name}) if n == 0 else (lambda name: {"api_visibility": "private"})
            p["pick"].input(self.choose, [p["role"], p["pick"], session], out, **named("choose_input"))
            p["add_bundled"].click(self.add_bundled, [p["role"], p["bundled"], session], out, **named("add_bundled"))
            p["file"].upload(self.add_upload, [p["role"], p["file"], session], out, **named("add_input"))
            if "add_hub" in p:
                p["add_hub"].click(self.add_hub, [p["role"], p["hub"], session], out, **named("add_hub"))
        self.preset.change(preset_markdown, self.preset, self.preset_info, api_visibility="private")
        self.project_changes.append(
            self.use_preset_button.click(self.use_preset, [self.preset, session], out, api_name="apply_preset"))
        t = self.panels[Role.TARGET]
        t["train"].click(self.train_tokenizer, [t["train_file"], t["vocab"], t["algorithm"], session], out,
                         api_name="train_tokenizer")
