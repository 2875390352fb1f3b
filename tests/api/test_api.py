"""The app's public API, driven by ``gradio_client`` against a launched app (free local port).

One app per module on a fresh workspace: the demo project plus two tiny LMs
(``tests/api/workspace.py``). Jobs are real (subprocesses); the test reaches the store through
``demo.tokmap_context`` only to wait for them.
"""

from __future__ import annotations

import socket

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.api.workspace import prepare_demo
from tokmap_ui.io.demo_kit import demo_kit_paths
from tokmap_ui.project import DEMO_PROJECT, Role, selected

PUBLIC = {"/open_project", "/create_project", "/choose_input", "/add_bundled", "/add_input", "/add_hub",
          "/train_tokenizer", "/inspect_tokenizer", "/inspect_dictionary", "/build_map", "/open_map", "/map_entry",
          "/set_reviewer", "/review_queue", "/review", "/start_finetune", "/cancel_finetune", "/resume_finetune",
          "/download_model", "/push_model", "/train_delta", "/compatibility", "/arena", "/job_details",
          "/cancel_job", "/resume_job", "/list_jobs"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(client, store, ids) of a launched app."""
    from tokmap_ui.ui import build_app

    home = tmp_path_factory.mktemp("api-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOKMAP_HOME", str(home))
        mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio-tmp")))
        demo = build_app(home, poll_s=5.0)
        store = demo.tokmap_context.store
        ids = prepare_demo(store, tmp_path_factory.mktemp("models"))
        port = _free_port()
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        yield client, store, ids
        client.close()
        demo.close()


def wait_job(store, job_id: int, timeout: float = 240.0):
    from tokmap_ui import jobs

    job = jobs.wait(store, job_id, timeout_s=timeout, interval_s=0.5)
    assert job.status.finished, f"job {job_id} still {job.status.value} after {timeout} s"
    return job


def test_named_endpoints_are_stable_and_ui_ones_private(app):
    client, _, _ = app
    named = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert PUBLIC <= named, PUBLIC - named
    assert not {n for n in named if n.startswith(("/on_", "/poll", "/lambda", "/pick_row", "/recolour"))}


def test_project_inputs_bad_upload_and_bundled(app, tmp_path):
    client, store, _ = app
    values = client.predict(DEMO_PROJECT, api_name="/open_project")
    table = values[1]
    assert "tiny-gpt2" in [row[3] for row in table["data"]]
    count = len(store.list_artifacts(DEMO_PROJECT))
    bad = tmp_path / "broken.tsv"
    bad.write_bytes(b"\xff\xfe\x00b\x00a\x00d")  # UTF-16: the core names the file and the fix
    with pytest.raises(AppError, match="broken.tsv"):
        client.predict("dictionary", handle_file(str(bad)), api_name="/add_input")
    assert len(store.list_artifacts(DEMO_PROJECT)) == count
    client.predict("dictionary", "fy-nl", api_name="/add_bundled")
    assert selected(store, DEMO_PROJECT, Role.DICTIONARY).name == "fy-nl"
    client.predict("dictionary", "en-nl", api_name="/add_bundled")
    assert selected(store, DEMO_PROJECT, Role.DICTIONARY).name == "en-nl"
    report = client.predict(handle_file(str(demo_kit_paths().dicts["en-nl.dev"])), api_name="/inspect_dictionary")
    assert "pairs" in report
    with pytest.raises(AppError, match="offline"):
        client.predict("source", "gpt2", api_name="/add_hub")


def test_build_map_job_entry_and_review(app):
    client, store, _ = app
    status = client.predict("fvt", 3, 0.1, "pca", api_name="/build_map")
    job_id = int(status.split()[2])
    job = wait_job(store, job_id)
    assert job.status.value == "succeeded", job.error
    map_id = job.progress["done"]["map_id"]
    coverage, payload, info = client.predict(map_id, "language", api_name="/open_map")
    assert payload["format"] == "tokmap.map-plot/1" and payload["n"] > 16000 and "fvt" in info
    entry = client.predict("target", 120, api_name="/map_entry")
    assert entry.startswith("### target token #120") and "Nearest source tokens" in entry
    with pytest.raises(AppError, match="Who is reviewing"):
        client.predict("approve", "", "", api_name="/review")
    client.predict("api tester", api_name="/set_reviewer")
    text, sources, comment = client.predict("approve", "", "", api_name="/review")
    table, progress = client.predict(["approved"], [], False, "any", "", api_name="/review_queue")
    assert [row[1] for row in table["data"]] == [120] and "reviewed 1/16,000" in progress
    text, sources, comment = client.predict("comment", "", "checked by the API test", api_name="/review")
    assert "checked by the API test" in text


def test_finetune_start_cancel_and_jobs(app):
    client, store, _ = app
    status = client.predict(["fvt"], 30, 2, 32, 1e-3, api_name="/start_finetune")
    assert status.startswith("started jobs")
    job_id = int(status.split()[2].rstrip(":"))
    assert "fvt" in store.get_job(job_id).config["argv"]
    cancelled = client.predict(api_name="/cancel_finetune")
    assert f"cancelled jobs {job_id}" == cancelled
    assert store.get_job(job_id).status.value == "cancelled"
    assert client.predict(api_name="/resume_finetune") == f"resumed jobs {job_id}"
    detail = client.predict(job_id, api_name="/cancel_job")
    assert f"job {job_id}: compare-init" in detail and "cancelled" in detail
    table, _ = client.predict(api_name="/list_jobs")
    assert job_id in [row[0] for row in table["data"]]
    with pytest.raises(AppError, match="already cancelled"):
        client.predict(job_id, api_name="/cancel_job")


def test_compatibility_report_per_host(app):
    client, store, ids = app
    report = client.predict(ids["source"], [ids["host-gpt2"], ids["host-llama"]], api_name="/compatibility")
    assert "tiny-gpt2 → delta" in report and "tiny-llama → delta" in report and "exact" in report
    with pytest.raises(AppError, match="Pick a trained delta"):
        client.predict("hello", None, [ids["host-gpt2"]], 1.0, 0.0, 1.0, 0, 4, 0, False, api_name="/arena")
    with pytest.raises(AppError, match="Tick at least one host"):
        client.predict(ids["source"], [], api_name="/compatibility")
