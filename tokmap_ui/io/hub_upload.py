"""Pushing a model folder to the Hugging Face hub (online only; fails fast and clearly offline).

Example:
    >>> url = push_model_dir("runs/init-fvt/finetune/model", "me/gpt2-nl", token="hf_...")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from tokmap_ui.errors import HubError, InputFileError
from tokmap_ui.io.hub import hub_endpoint, hub_offline, hub_reachable

_REPO = r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*"


def push_model_dir(folder: str | Path, repo_id: str, token: str, *, private: bool = True,
                   timeout: float = 5.0) -> str:
    """Create ``repo_id`` (private by default) if needed and upload ``folder`` to it; return its URL.

    Raises:
        InputFileError: ``folder`` is not a model folder.
        HubError: bad repo id, no token, offline mode, hub unreachable, or the upload refused.
    """
    import re

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise InputFileError(folder, "is not a model folder (no config.json)", fix="finish the run first")
    if not re.fullmatch(_REPO, repo_id or ""):
        raise HubError(f"'{repo_id}' is not a hub repo id. Fix: write it as owner/name, e.g. me/gpt2-nl.")
    if not (token or "").strip():
        raise HubError("pushing needs a hub token with write access. Fix: paste a token (hf_...).")
    if hub_offline():
        raise HubError("offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE), so nothing can be pushed. "
                       "Fix: download the zip instead, or unset offline mode.")
    endpoint = hub_endpoint()
    if not hub_reachable(endpoint, timeout):
        raise HubError(f"the hub ({endpoint}) cannot be reached within {timeout:g} s. "
                       "Fix: check the network, or download the zip instead.")
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token.strip())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                          commit_message="Upload a tokmap-converted model")
    except Exception as err:  # any refusal (bad token, no rights, HTTP error) means the same to the user
        detail = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise HubError(f"the hub refused the upload to '{repo_id}' ({detail}). "
                       "Fix: check the token's write access and the repo name.") from None
    return f"{endpoint}/{repo_id}"
