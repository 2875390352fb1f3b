"""Load any tokenizer a user may hand us as a transformers fast tokenizer.

Accepted (see :func:`load_tokenizer`): an HF tokenizer folder, a bare ``tokenizer.json``,
a SentencePiece ``.model``, a WordPiece ``vocab.txt``, GPT-2 ``vocab.json`` + ``merges.txt``,
a ``.zip`` of any of these, or a hub id when the network is allowed. Every bad input
(empty, binary, UTF-16, broken JSON with its line and column, truncated ``.model``,
pickled ``.bin``/``.pt``/``.pkl``) becomes a :class:`~tokmap_ui.errors.TokenizerError`,
:class:`~tokmap_ui.errors.UnsafeFileError`, :class:`~tokmap_ui.errors.InputFileError`
("not found") or :class:`~tokmap_ui.errors.HubError` naming the file and the fix.

Example:
    >>> tok = load_tokenizer("assets/tokenizers/nl-bpe")            # doctest: +SKIP
    >>> print(inspect_tokenizer_file("assets/tokenizers/nl-bpe").to_text())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tokmap_ui.errors import InputFileError, TokenizerError
from tokmap_ui.io.archives import content_folder, safe_extract_zip
from tokmap_ui.io.files import PICKLE_SUFFIXES, read_text, read_text_lines, refuse_pickle, require_file, sha256_file
from tokmap_ui.io.hub import hub_snapshot
from tokmap_ui.tokenizer_report import TokenizerReport, inspect_tokenizer
from tokmap_ui.vocab import ROLES, bytelevel_to_bytes, guess_special_roles

if TYPE_CHECKING:  # transformers takes a second to import: only when a tokenizer is loaded
    from transformers import PreTrainedTokenizerFast

__all__ = ["load_tokenizer", "inspect_tokenizer_file", "inspect_tokenizer", "TokenizerReport"]

FORMATS = ("an HF tokenizer folder, tokenizer.json, a SentencePiece .model, a WordPiece vocab.txt, "
           "GPT-2 vocab.json + merges.txt, or a .zip of one of these")
_KNOWN_SUFFIXES = {".json", ".model", ".txt", ".zip", ".safetensors", ".gz", ".tar", ".tgz"} | PICKLE_SUFFIXES
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_HUB_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
              "*.model", "vocab.txt", "vocab.json", "merges.txt"]
_SPM_NAMES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "sentencepiece.model")


def load_tokenizer(spec: str | Path, *, cache_dir: str | Path | None = None,
                   hub_timeout: float = 5.0) -> PreTrainedTokenizerFast:
    """Load a tokenizer from a path or hub id; always a fast tokenizer, never remote code.

    Args:
        spec: a folder, a tokenizer file, a ``.zip``, or a hub id such as ``"gpt2"``.
        cache_dir: where zips are extracted (default: ``$TOKMAP_HOME/cache/archives``, else
            ``<tmp>/tokmap-archives``), keyed by the zip's SHA-256 so an unchanged zip is
            extracted once.
        hub_timeout: seconds to wait for the hub before giving up.

    Raises:
        InputFileError: a path that does not exist.
        TokenizerError / UnsafeFileError: unreadable, malformed or pickled input.
        HubError: a hub id while offline (HF_HUB_OFFLINE=1 / TRANSFORMERS_OFFLINE=1) and not
            cached, or the hub cannot be reached within ``hub_timeout`` seconds.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if path.exists():
        tokenizer = _load_path(path, cache_dir)
    elif _looks_like_path(text) or not _HUB_ID.match(text):
        raise InputFileError(path, "not found", fix=f"check the path; give {FORMATS}")
    else:
        tokenizer = _load_folder(hub_snapshot(text, _HUB_FILES, hub_timeout))
    if not isinstance(tokenizer, _fast_class()):
        raise TokenizerError(text, f"loaded as a slow {type(tokenizer).__name__}, tokmap needs a fast tokenizer",
                             fix="save it with a tokenizer.json (`save_pretrained(dir)` of a fast tokenizer)")
    tokenizer.name_or_path = text
    _fill_roles(tokenizer)
    return tokenizer


def inspect_tokenizer_file(spec: str | Path, sample_text: str | None = None) -> TokenizerReport:
    """Load ``spec`` with :func:`load_tokenizer` and report on it (what ``tokmap inspect-tokenizer`` prints)."""
    return inspect_tokenizer(load_tokenizer(spec), sample_text)


# ---------------------------------------------------------------- dispatch

def _fast_class() -> type[PreTrainedTokenizerFast]:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast


def _looks_like_path(text: str) -> bool:
    return (text.startswith((".", "/", "~", "\\")) or "\\" in text or text.count("/") > 1
            or (os.sep != "/" and os.sep in text) or Path(text).suffix.lower() in _KNOWN_SUFFIXES)


def _load_path(path: Path, cache_dir: str | Path | None) -> PreTrainedTokenizerFast:
    if path.is_dir():
        return _load_folder(path)
    suffix, name = path.suffix.lower(), path.name.lower()
    refuse_pickle(path)
    try:
        require_file(path, "tokenizer file")
    except InputFileError as err:
        raise _wrap(err) from None
    if suffix == ".zip":
        return _load_folder(_extract(path, cache_dir))
    if name in ("tokenizer_config.json", "special_tokens_map.json") or (
            name == "tokenizer.json" and (path.parent / "tokenizer_config.json").is_file()):
        return _load_folder(path.parent)
    if name == "vocab.json" or name == "merges.txt":
        return _gpt2_files(path.parent / "vocab.json", path.parent / "merges.txt")
    if suffix == ".json":
        return _tokenizer_json(path)
    if suffix == ".model":
        return _sentencepiece(path)
    if suffix == ".txt":
        return _wordpiece(path)
    raise TokenizerError(path, f"is not a tokenizer file tokmap knows ('{suffix or name}')", fix=f"give {FORMATS}")


def _load_folder(folder: Path) -> PreTrainedTokenizerFast:
    files = {p.name for p in folder.iterdir() if p.is_file()}
    if "tokenizer.json" in files:
        _parse_json(folder / "tokenizer.json")  # clear errors before transformers sees the file
        for extra in ("tokenizer_config.json", "special_tokens_map.json"):
            if extra in files:
                _parse_json(folder / extra)
        try:
            return _fast_class().from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        except Exception as err:  # third-party code: any failure is the folder's fault
            raise TokenizerError(folder, f"cannot be loaded by transformers ({_first_line(err)})",
                                 fix="check tokenizer.json and tokenizer_config.json") from None
    declared = _declared_specials(folder, files)
    spm = [n for n in _SPM_NAMES if n in files] or sorted(n for n in files if n.endswith(".model"))
    if spm:
        tokenizer = _sentencepiece(folder / spm[0], declared)
    elif "vocab.json" in files and "merges.txt" in files:
        tokenizer = _gpt2_files(folder / "vocab.json", folder / "merges.txt", declared)
    elif "vocab.txt" in files:
        tokenizer = _wordpiece(folder / "vocab.txt", declared)
    else:
        raise TokenizerError(folder, "has no tokenizer files", fix=f"give {FORMATS}")
    _add_declared_tokens(tokenizer, folder)
    return tokenizer


def _extract(zip_path: Path, cache_dir: str | Path | None) -> Path:
    if cache_dir is None:
        home = os.environ.get("TOKMAP_HOME")
        cache_dir = Path(home) / "cache" / "archives" if home else Path(tempfile.gettempdir()) / "tokmap-archives"
    base = Path(cache_dir)
    dest = base / sha256_file(zip_path)[:24]  # content-addressed: an unchanged zip is extracted once
    if not dest.is_dir():
        try:
            return safe_extract_zip(zip_path, dest)
        except InputFileError:
            if not dest.is_dir():  # not a concurrent extraction of the same zip: a real error
                raise
    return content_folder(dest)


# ---------------------------------------------------------------- one loader per format

def _wrap(err: InputFileError) -> TokenizerError:
    return TokenizerError(err.path, err.problem, line=err.line, field=err.field, fix=err.fix)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def _read_json(path: Path) -> tuple[str, object]:
    """The text of a JSON file and its parsed value, with line and column on syntax errors."""
    try:
        text = read_text(path, "JSON file")
    except TokenizerError:
        raise
    except InputFileError as err:
        raise _wrap(err) from None
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as err:
        raise TokenizerError(path, f"is not valid JSON ({err.msg} at column {err.colno})", line=err.lineno,
                             fix="repair the file or re-save it with `tokenizer.save_pretrained(dir)`") from None


def _parse_json(path: Path):
    return _read_json(path)[1]


def _tokenizer_json(path: Path) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer

    text, data = _read_json(path)
    if not isinstance(data, dict) or "model" not in data:
        hint = " (it looks like a vocab.json: give it together with merges.txt)" if isinstance(data, dict) and all(
            isinstance(v, int) for v in list(data.values())[:50]) else ""
        raise TokenizerError(path, f"is JSON but not a tokenizers 'tokenizer.json' (no 'model' field){hint}",
                             field="model", fix=f"give {FORMATS}")
    try:
        backend = Tokenizer.from_str(text)
    except Exception as err:  # the Rust parser's message names the bad field
        raise TokenizerError(path, f"cannot be read by the tokenizers library ({_first_line(err)})",
                             fix="re-save it with `tokenizer.save_pretrained(dir)`") from None
    return _fast_class()(tokenizer_object=backend)


def _sentencepiece(path: Path, declared: dict[str, str] | None = None) -> PreTrainedTokenizerFast:
    from tokmap_ui.io.spm import sentencepiece_to_tokenizer

    data = require_file(path, "SentencePiece model").read_bytes()
    backend, specials = sentencepiece_to_tokenizer(path, data)
    return _fast_class()(tokenizer_object=backend, **{**specials, **(declared or {})})


def _wordpiece(path: Path, declared: dict[str, str] | None = None) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    try:
        lines = read_text_lines(path, "WordPiece vocab.txt")
    except InputFileError as err:
        raise _wrap(err) from None
    vocab: dict[str, int] = {}
    for number, token in enumerate(lines, 1):
        if not token.strip():
            raise TokenizerError(path, "has an empty token", line=number, fix="remove the blank line")
        if token in vocab:
            raise TokenizerError(path, f"repeats the token '{token}' (first on line {vocab[token] + 1})",
                                 line=number, fix="remove the duplicate line")
        vocab[token] = len(vocab)
    specials = {f"{r}_token": t for r, t in (("unk", "[UNK]"), ("pad", "[PAD]"), ("cls", "[CLS]"),
                                             ("sep", "[SEP]"), ("mask", "[MASK]")) if t in vocab}
    specials.update(declared or {})
    config = _read_config(path.parent)
    lowercase = config.get("do_lower_case")
    if not isinstance(lowercase, bool):  # an uncased vocabulary has no capitals outside [SPECIAL] tokens
        lowercase = not any(t != t.lower() for t in vocab if not (t.startswith("[") and t.endswith("]")))
    backend = Tokenizer(WordPiece(vocab, unk_token=specials.get("unk_token", "[UNK]")))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    if "cls_token" in specials and "sep_token" in specials:
        backend.post_processor = processors.BertProcessing((specials["sep_token"], vocab[specials["sep_token"]]),
                                                           (specials["cls_token"], vocab[specials["cls_token"]]))
    return _fast_class()(tokenizer_object=backend, do_lower_case=lowercase, **specials)


def _gpt2_files(vocab_path: Path, merges_path: Path,
                declared: dict[str, str] | None = None) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE

    for needed in (vocab_path, merges_path):
        if not needed.is_file():
            raise InputFileError(needed, "not found (GPT-2 tokenizers need vocab.json and merges.txt together)",
                                 fix="put both files in one folder and give the folder")
    vocab = _parse_json(vocab_path)
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise TokenizerError(vocab_path, "is not a GPT-2 vocab.json (expected {\"token\": id, ...})",
                             fix="give the vocab.json that came with merges.txt")
    plain = [t for t in vocab if not (t.startswith("<") and t.endswith(">"))]
    if plain and sum(bytelevel_to_bytes(t) is not None for t in plain) < 0.95 * len(plain):
        raise TokenizerError(vocab_path, "is not a GPT-2 byte-level vocabulary (most tokens use characters "
                             "outside the byte-level alphabet)", fix="save the tokenizer as tokenizer.json instead")
    try:
        lines = read_text_lines(merges_path, "merges.txt")
    except InputFileError as err:
        raise _wrap(err) from None
    merges = []
    for number, line in enumerate(lines, 1):
        if number == 1 and line.startswith("#version") or not line.strip():
            continue
        pair = line.split(" ")
        if len(pair) != 2 or pair[0] not in vocab or pair[1] not in vocab:
            raise TokenizerError(merges_path, f"has a bad merge '{line}'", line=number,
                                 fix="each line must be two tokens of vocab.json separated by one space")
        merges.append((pair[0], pair[1]))
    backend = Tokenizer(BPE(vocab, merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    # Special-looking tokens (<|endoftext|>, <s>, <pad>, ...) become special; roles by spelling,
    # plus GPT-2's convention that <|endoftext|> is bos, eos and unk at once.
    looks_special = {t: i for t, i in vocab.items() if re.fullmatch(r"<\|[^|]+\|>|</?s>|<(pad|unk|mask)>", t)}
    backend.add_special_tokens(list(looks_special))
    by_id = {i: t for t, i in looks_special.items()}
    specials = {f"{role}_token": by_id[i] for role, i in guess_special_roles(looks_special).items()}
    if "<|endoftext|>" in vocab:
        for role in ("bos", "eos", "unk"):
            specials.setdefault(f"{role}_token", "<|endoftext|>")
    return _fast_class()(tokenizer_object=backend, **{**specials, **(declared or {})})


# ---------------------------------------------------------------- special-token roles

def _read_config(folder: Path) -> dict:
    path = folder / "tokenizer_config.json"
    return _parse_json(path) if path.is_file() else {}


def _declared_specials(folder: Path, files: set[str]) -> dict[str, str]:
    """``{"bos_token": "<s>", ...}`` from tokenizer_config.json / special_tokens_map.json, if any."""
    declared: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        data = _parse_json(folder / name) if name in files else {}
        for role in ROLES:
            value = data.get(f"{role}_token") if isinstance(data, dict) else None
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                declared.setdefault(f"{role}_token", value)
    return declared


def _add_declared_tokens(tokenizer: PreTrainedTokenizerFast, folder: Path) -> None:
    """Add the tokens tokenizer_config.json declares beyond the vocabulary file (T5's ``<extra_id_N>``).

    Only for folders without tokenizer.json; each must land on the id the config gives it.
    """
    from tokenizers import AddedToken

    config = _read_config(folder)
    if not isinstance(config, dict):
        return
    declared = config.get("added_tokens_decoder") or {}
    entries = sorted((int(i), spec) for i, spec in declared.items() if isinstance(spec, dict) and "content" in spec)
    extra = [t for t in config.get("additional_special_tokens") or [] if isinstance(t, str)]
    entries += [(None, {"content": t, "special": True}) for t in extra]
    vocab = tokenizer.get_vocab()
    for token_id, spec in entries:
        content = spec["content"]
        if content not in vocab:
            tokenizer.add_tokens([AddedToken(content, special=bool(spec.get("special")), normalized=False)],
                                 special_tokens=bool(spec.get("special")))
            vocab[content] = tokenizer.convert_tokens_to_ids(content)
        actual = vocab[content]
        if token_id is not None and actual != token_id:
            raise TokenizerError(folder / "tokenizer_config.json", f"declares '{content}' at id {token_id}, "
                                 f"but the vocabulary puts it at id {actual}", field="added_tokens_decoder",
                                 fix="make the ids in added_tokens_decoder follow the vocabulary file")


def _fill_roles(tokenizer: PreTrainedTokenizerFast) -> None:
    """Declare conventionally spelled special tokens (``</s>`` -> eos) for roles left empty.

    A bare tokenizer.json carries no roles; this lets model conversion find eos/pad ids.
    """
    vocab = tokenizer.get_vocab()
    specials = {str(t): i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    for role, token_id in guess_special_roles(specials).items():
        current = getattr(tokenizer, f"{role}_token", None)
        if current is None or str(current) not in vocab:
            setattr(tokenizer, f"{role}_token", next(t for t, i in specials.items() if i == token_id))
