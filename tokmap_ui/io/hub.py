"""Fetching files from the Hugging Face hub without hanging when it cannot be reached.

With the network closed, huggingface_hub retries for about 50 s before failing
(DESIGN.md, "Known traps"). :func:`hub_snapshot` answers at once instead: in offline
mode (``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``) it only looks in the local
cache; otherwise it first checks, within a few seconds, that the hub's host accepts a
connection. Either failure is a :class:`~tokmap_ui.errors.HubError` that says what to do.

Example:
    >>> folder = hub_snapshot("gpt2", ["tokenizer.json", "*.txt"])   # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from tokmap_ui.errors import HubError


def hub_offline() -> bool:
    """True when the environment asks for offline mode (read now, not at import)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_endpoint() -> str:
    """The hub's base URL (``HF_ENDPOINT`` or huggingface.co)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(endpoint: str, timeout: float) -> bool:
    """Can we open a TCP connection to ``endpoint`` within ``timeout`` seconds (DNS included)?"""
    url = urlparse(endpoint)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    # A thread bounds DNS resolution too, which ignores socket timeouts.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def hub_snapshot(repo_id: str, allow_patterns: list[str], timeout: float = 5.0) -> Path:
    """The local folder holding ``allow_patterns`` files of hub repo ``repo_id``, downloading if allowed.

    Raises:
        HubError: offline and not cached, the hub unreachable within ``timeout`` seconds, or
            the download refused (unknown id, gated repo, HTTP error).
    """
    from huggingface_hub import snapshot_download

    cache = os.environ.get("HF_HUB_CACHE") or None  # read now: huggingface_hub reads it at import
    endpoint = hub_endpoint()
    if hub_offline():
        try:
            return Path(snapshot_download(repo_id, allow_patterns=allow_patterns, local_files_only=True,
                                          cache_dir=cache))
        except Exception:  # every miss means the same thing here: not cached
            raise HubError(f"'{repo_id}' is not a local path, and as a hub id it is not in the local hub cache "
                           "while offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE). Fix: give a local "
                           "folder or file, or unset offline mode to download it") from None
    if not hub_reachable(endpoint, timeout):
        raise HubError(f"'{repo_id}' is not a local path, and the hub ({endpoint}) cannot be reached within "
                       f"{timeout:g} s. Fix: give a local folder or file, or check the network")
    try:
        folder = snapshot_download(repo_id, allow_patterns=allow_patterns, cache_dir=cache, endpoint=endpoint,
                                   etag_timeout=timeout)
    except Exception as err:  # not found, gated, HTTP errors: all mean "cannot use this id"
        detail = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise HubError(f"cannot download '{repo_id}' from {endpoint} ({detail}). "
                       "Fix: check the id and your access rights, or give a local folder") from None
    return Path(folder)
