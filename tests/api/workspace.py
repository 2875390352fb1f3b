"""A test workspace: the demo project plus two tiny causal LMs, so app tests run in seconds.

The demo kit's own tiny LMs take long to train and fine-tune on 2 CPU cores; these are built
in-process (``tests/models.py``: hidden size 16, one layer), saved as model folders and added
to the demo project as its selected source model and as CMC hosts: a GPT-2 (byte-level BPE,
also the delta template) and a Llama (another vocabulary, so the arena needs a PM-MinED map).
"""

from __future__ import annotations

from pathlib import Path

from tokmap_ui.project import DEMO_PROJECT, Role, add_input, ensure_demo_project
from tokmap_ui.store import Store


def save_tiny_models(dest: Path) -> dict[str, Path]:
    """Build and save the tiny GPT-2 and Llama (seeded); return their folders."""
    from tests.models import save_pair, tiny_pair

    folders = {}
    for family in ("gpt2", "llama"):
        folder = dest / f"tiny-{family}"
        if not (folder / "config.json").is_file():
            model, tokenizer = tiny_pair(family, seed=1)
            save_pair(model, tokenizer, folder)
        folders[family] = folder
    return folders


def prepare_demo(store: Store, models_dir: Path) -> dict[str, int]:
    """The demo project with the tiny models added and selected; returns their artifact ids."""
    ensure_demo_project(store)
    folders = save_tiny_models(models_dir)
    ids = {"source": add_input(store, DEMO_PROJECT, Role.SOURCE, folders["gpt2"], "tiny-gpt2", copy=False).id,
           "host-gpt2": add_input(store, DEMO_PROJECT, Role.HOST, folders["gpt2"], "tiny-gpt2", copy=False).id,
           "host-llama": add_input(store, DEMO_PROJECT, Role.HOST, folders["llama"], "tiny-llama", copy=False).id}
    return ids
