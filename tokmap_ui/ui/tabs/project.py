"""Project & data tab: inspect the tokenizers and dictionary a project will use.

Handlers are short adapters: file path in, one core call, Markdown out. Bad files
raise ``gr.Error`` with the core's own message and change nothing else.
"""

from __future__ import annotations

import gradio as gr

from tokmap_ui.errors import TokmapError


def inspect_tokenizer_markdown(path_or_id: str | None) -> str:
    """Inspection summary of an uploaded tokenizer file or a hub id, as Markdown."""
    from tokmap_ui.io.tokenizers import inspect_tokenizer_file

    if not path_or_id:
        raise gr.Error("Upload a tokenizer file (.json, .model, vocab.txt, .zip) or type a hub id first.")
    try:
        report = inspect_tokenizer_file(path_or_id)
    except TokmapError as err:
        raise gr.Error(str(err)) from None
    return f"```\n{report.to_text()}\n```"


def inspect_dictionary_markdown(path: str | None) -> str:
    """Inspection summary of an uploaded dictionary, as Markdown."""
    from tokmap_ui.io.dictionaries import inspect_dictionary_file

    if not path:
        raise gr.Error("Upload a dictionary file (.tsv, .csv, .txt, .json) first.")
    try:
        report = inspect_dictionary_file(path)
    except TokmapError as err:
        raise gr.Error(str(err)) from None
    return f"```\n{report.to_text()}\n```"


def build() -> None:
    with gr.Row():
        with gr.Column():
            gr.Markdown("### Tokenizer")
            tok_file = gr.File(label="Tokenizer file or zip", file_types=[".json", ".model", ".txt", ".zip"],
                               type="filepath")
            tok_hub = gr.Textbox(label="…or a hub id (needs network)", placeholder="gpt2")
            tok_button = gr.Button("Inspect tokenizer")
            tok_report = gr.Markdown()
        with gr.Column():
            gr.Markdown("### Dictionary")
            dict_file = gr.File(label="Bilingual dictionary", file_types=[".tsv", ".csv", ".txt", ".json"],
                                type="filepath")
            dict_button = gr.Button("Inspect dictionary")
            dict_report = gr.Markdown()
    tok_button.click(lambda f, hub: inspect_tokenizer_markdown(f or hub), [tok_file, tok_hub], tok_report,
                     api_name="inspect_tokenizer")
    dict_button.click(inspect_dictionary_markdown, dict_file, dict_report, api_name="inspect_dictionary")
