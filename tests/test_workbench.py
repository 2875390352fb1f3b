"""Core pieces behind the app: project inputs and the demo project, tokenizer training, workspace
files, and the job commands' configs (no gradio here)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from tests.tiny import corpus_lines, make_bytelevel_bpe
from tokmap_ui.errors import ConfigError, HubError, InputFileError, StoreError, TokenizerError
from tokmap_ui.project import (DEMO_PROJECT, Role, add_input, add_kit_item, ensure_demo_project, kit_items,
                               role_artifacts, select, selected, selected_path, train_target_tokenizer)
from tokmap_ui.store import Store
from tokmap_ui.tokenizer_training import TokenizerAlgorithm, TokenizerTrainingConfig, train_tokenizer


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "home") as opened:
        yield opened


# ---------------------------------------------------------------- tokenizer training

@pytest.mark.parametrize("algorithm, first", [("bpe", "<s>"), ("unigram", "<s>"), ("wordpiece", "[CLS]")])
def test_train_tokenizer_each_algorithm_round_trips(algorithm, first):
    lines = corpus_lines(300)
    tok = train_tokenizer(lines, TokenizerTrainingConfig(algorithm, vocab_size=300))
    ids = tok(lines[1])["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[0] == first
    decoded = tok.decode(ids, skip_special_tokens=True)
    assert decoded.replace(" ", "").lower() == lines[1].replace(" ", "").lower()
    assert 50 < len(tok) <= 300


def test_tokenizer_training_refuses_bad_settings():
    with pytest.raises(ConfigError, match="unknown"):
        TokenizerTrainingConfig("sentencepiece-magic")
    with pytest.raises(ConfigError, match="vocab_size"):
        TokenizerTrainingConfig("bpe", vocab_size=10)
    with pytest.raises(ConfigError, match="at least 10"):
        train_tokenizer(["one line"] * 3, TokenizerTrainingConfig("bpe", vocab_size=200))
    assert TokenizerAlgorithm.choices() == ["bpe", "unigram", "wordpiece"]


# ---------------------------------------------------------------- project inputs

def test_demo_project_is_idempotent_and_selects_demo_inputs(store):
    project = ensure_demo_project(store)
    count = len(store.list_artifacts(project))
    again = ensure_demo_project(store)
    assert len(store.list_artifacts(again)) == count and project.id == again.id
    assert selected(store, DEMO_PROJECT, Role.TARGET).name == "nl-bpe"
    assert selected(store, DEMO_PROJECT, Role.DICTIONARY).name == "en-nl"
    assert selected(store, DEMO_PROJECT, Role.TRAIN_TEXT).name == "nl/train"
    data = selected_path(store, DEMO_PROJECT, Role.DELTA_DATA)
    first = data.read_text(encoding="utf-8").splitlines()[0]
    assert '"split": "forget"' in first
    source = selected(store, DEMO_PROJECT, Role.SOURCE)
    names = [i.name for i in kit_items() if i.role is Role.SOURCE and i.kind == "model"]
    assert source.name == names[0]  # the tiny GPT-2 once the kit has it, else MiniLM


def test_user_selection_survives_demo_refresh(store):
    ensure_demo_project(store)
    fy = add_kit_item(store, DEMO_PROJECT, Role.TARGET, "fy-bpe")
    ensure_demo_project(store)
    assert selected(store, DEMO_PROJECT, Role.TARGET).id == fy.id


def test_add_input_checks_first_and_leaves_nothing_on_failure(store, tmp_path):
    store.create_project("p")
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"model": ', encoding="utf-8")
    with pytest.raises(TokenizerError, match="tokenizer.json"):
        add_input(store, "p", Role.TARGET, bad)
    broken_zip = tmp_path / "tok.zip"
    with zipfile.ZipFile(broken_zip, "w") as archive:
        archive.writestr("tok/readme.txt", "no tokenizer here")
    with pytest.raises(TokenizerError):
        add_input(store, "p", Role.TARGET, broken_zip)
    assert store.list_artifacts("p") == []
    inputs = store.project_dir("p") / "inputs"
    assert not inputs.exists() or not any(p.is_file() for p in inputs.rglob("*"))

    good = make_bytelevel_bpe(tmp_path / "good", 300)
    artifact = add_input(store, "p", Role.TARGET, good)
    assert artifact.kind == "tokenizer" and selected(store, "p", Role.TARGET).id == artifact.id
    assert store.project_dir("p") in artifact.path.parents  # copied into the workspace
    with pytest.raises(StoreError, match="not a dictionary"):
        select(store, "p", Role.DICTIONARY, artifact.id)
    with pytest.raises(ConfigError, match="has no dictionary"):
        selected_path(store, "p", Role.DICTIONARY)


def test_zipped_folder_is_unpacked_and_checked(store, tmp_path):
    store.create_project("z")
    folder = make_bytelevel_bpe(tmp_path / "tok", 300)
    folder = folder if folder.is_dir() else folder.parent
    archive = tmp_path / "tok.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for file in folder.iterdir():
            z.write(file, f"tok/{file.name}")
    artifact = add_input(store, "z", Role.SOURCE, archive)
    assert artifact.kind == "tokenizer" and (artifact.path / "tokenizer.json").is_file()


def test_train_target_tokenizer_registers_and_selects(store, tmp_path):
    store.create_project("t")
    text = tmp_path / "nl.txt"
    text.write_text("\n".join(corpus_lines(200)), encoding="utf-8")
    artifact = train_target_tokenizer(store, "t", text, TokenizerTrainingConfig("bpe", vocab_size=280))
    assert selected(store, "t", Role.TARGET).id == artifact.id
    assert (artifact.path / "tokenizer.json").is_file() and artifact.meta["trained"]["algorithm"] == "bpe"
    assert [a.id for a in role_artifacts(store, "t", Role.TARGET)] == [artifact.id]


# ---------------------------------------------------------------- workspace files and job configs

def test_layout_round_trip_and_import_refuses_pickles(tmp_path):
    from tokmap_ui.io.workspace_files import import_input, load_layout, save_layout
    from tokmap_ui.projection import Projection

    proj = Projection(np.arange(6, dtype=np.float32).reshape(3, 2), np.array([0, 1, 1], np.uint8),
                      np.array([4, 0, 1]), "k" * 32, "pca")
    back = load_layout(save_layout(proj, tmp_path / "layout.npz"))
    assert back.coords.tolist() == proj.coords.tolist() and back.ids.tolist() == [4, 0, 1] and back.key == proj.key
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(InputFileError, match="not a tokmap layout"):
        load_layout(tmp_path / "x.npz")
    (tmp_path / "model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(InputFileError):
        import_input(tmp_path / "model.bin", tmp_path / "copied.bin")
    assert not (tmp_path / "copied.bin").exists()


def test_job_configs_and_options():
    from tokmap_ui.workbench import InitRunConfig, MapJobConfig, build_parser, job_option

    with pytest.raises(ConfigError, match="unknown"):
        MapJobConfig(method="magic")
    with pytest.raises(ConfigError, match="layout"):
        MapJobConfig(layout="tsne")
    with pytest.raises(ConfigError):
        InitRunConfig(steps=0)

    class FakeJob:
        config = {"argv": ["init-run", "--method", "fvt", "--out", "/runs/x"]}

    assert job_option(FakeJob, "--out") == "/runs/x" and job_option(FakeJob, "--map") is None
    args = build_parser().parse_args(["init-run", "--method", "fvt", "--model", "m", "--target-tokenizer", "t",
                                      "--train", "a", "--valid", "b", "--out", "o"])
    assert args.steps == 60 and args.resume is False


def test_start_jobs_need_the_right_inputs(store):
    from tokmap_ui.workbench import MapJobConfig, start_init_runs, start_map_job

    store.create_project("empty")
    with pytest.raises(ConfigError, match="has no source"):
        start_map_job(store, "empty", MapJobConfig(method="fvt"))
    with pytest.raises(ConfigError, match="no init method"):
        start_init_runs(store, "empty", [])
    with pytest.raises(ConfigError, match="source \\*model\\*"):
        start_init_runs(store, "empty", ["fvt"])
    assert store.list_jobs() == []


def test_push_fails_fast_offline(tmp_path, monkeypatch):
    from tokmap_ui.io.hub_upload import push_model_dir

    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="offline"):
        push_model_dir(tmp_path, "me/model", "hf_token")
    with pytest.raises(HubError, match="owner/name"):
        push_model_dir(tmp_path, "not a repo", "hf_token")
    with pytest.raises(InputFileError, match="not a model folder"):
        push_model_dir(tmp_path / "missing", "me/model", "hf_token")
