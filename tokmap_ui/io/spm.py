"""Convert a SentencePiece ``.model`` file into a fast ``tokenizers.Tokenizer``.

transformers 5 builds a generic fast tokenizer from a bare ``.model`` without the
dummy-prefix ``▁`` or whitespace handling (its ``build_tokenizer_from_spm_proto``), so
"de kat" would tokenize differently from SentencePiece itself. This module follows
SentencePiece's own settings instead (the normalizer spec, ``add_dummy_prefix``,
``remove_extra_whitespaces``, ``byte_fallback``, control and user-defined pieces), the
way transformers' ``SpmConverter``/``LlamaConverter`` do for known models. Tests check
that it produces the same ids as ``sentencepiece`` on a mixed-language corpus.

The file is first loaded by ``sentencepiece`` itself, which rejects truncated or
corrupt models with a short message; protobuf (pinned in requirements.txt) then
reads its fields.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE, Unigram

from tokmap_ui.errors import TokenizerError

_UNIGRAM, _BPE = 1, 2
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6
_FIX = "give the original, complete tokenizer.model / spiece.model file (re-download or re-copy it)"


def _load_proto(path: Path, data: bytes):
    import sentencepiece as spm

    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:  # protobuf missing or too old for sentencepiece's generated code
        raise TokenizerError(path, "cannot be read: SentencePiece models need the protobuf package",
                             fix="install the pinned requirements (`pip install -r requirements.txt`)") from None

    processor = spm.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(data)
    except (RuntimeError, OSError, ValueError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "ParseFromArray" in detail:
            detail = "its protobuf data cannot be parsed"
        raise TokenizerError(path, f"is not a valid SentencePiece model (truncated or corrupt: {detail})",
                             fix=_FIX) from None
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(data)
    return proto


def _merges(pieces) -> list[tuple[str, str]]:
    from transformers.convert_slow_tokenizer import generate_merges

    vocab = {p.piece: i for i, p in enumerate(pieces)}
    skip = [p.piece for p in pieces if p.type != _NORMAL]
    # Merge rank follows the merged piece's score, as in SentencePiece BPE (score = -rank).
    return generate_merges(vocab, [(p.piece, p.score) for p in pieces], skip_tokens=skip)


def sentencepiece_to_tokenizer(path: str | Path, data: bytes) -> tuple[Tokenizer, dict[str, str]]:
    """Build the fast equivalent of a SentencePiece model.

    Args:
        path: the file the bytes came from (for messages).
        data: the ``.model`` file's bytes.

    Returns:
        The backend tokenizer and the special-token keywords for ``PreTrainedTokenizerFast``
        (``unk_token``, ``bos_token``, ``eos_token``, ``pad_token`` where the model has them).

    Raises:
        TokenizerError: truncated, corrupt or unsupported (WORD/CHAR, whitespace-as-suffix) models.
    """
    path = Path(path)
    proto = _load_proto(path, data)
    trainer, norm = proto.trainer_spec, proto.normalizer_spec
    pieces = list(proto.pieces)
    if trainer.model_type not in (_UNIGRAM, _BPE):
        kind = {3: "WORD", 4: "CHAR"}.get(trainer.model_type, str(trainer.model_type))
        raise TokenizerError(path, f"is a SentencePiece {kind} model, which tokmap cannot convert",
                             fix="train the tokenizer with model_type=unigram or bpe")
    if trainer.treat_whitespace_as_suffix:
        raise TokenizerError(path, "puts the whitespace marker at the end of pieces (treat_whitespace_as_suffix), "
                             "which tokmap cannot convert", fix="retrain without --treat_whitespace_as_suffix")
    byte_fallback = bool(trainer.byte_fallback)
    if trainer.model_type == _UNIGRAM:
        model = Unigram([(p.piece, p.score) for p in pieces], unk_id=trainer.unk_id, byte_fallback=byte_fallback)
    else:
        model = BPE({p.piece: i for i, p in enumerate(pieces)}, _merges(pieces), unk_token=trainer.unk_piece,
                    fuse_unk=True, byte_fallback=byte_fallback, dropout=None)
    tokenizer = Tokenizer(model)

    steps = []
    if norm.precompiled_charsmap:
        steps.append(normalizers.Precompiled(norm.precompiled_charsmap))
    if norm.remove_extra_whitespaces:
        steps += [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    if steps:
        tokenizer.normalizer = normalizers.Sequence(steps)
    prepend = "always" if norm.add_dummy_prefix else "never"
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=prepend,
                                                       split=bool(trainer.split_by_whitespace))
    steps = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    if norm.add_dummy_prefix:
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    tokenizer.decoder = decoders.Sequence(steps)

    # Control and unknown pieces are special tokens; user-defined symbols always match
    # as a whole but are ordinary text (as in transformers' SpmConverter).
    added = [AddedToken(p.piece, normalized=False, special=p.type in (_CONTROL, _UNKNOWN))
             for p in pieces if p.type in (_UNKNOWN, _CONTROL, _USER_DEFINED)]
    tokenizer.add_tokens(added)

    specials = {}
    for role, index in (("unk", trainer.unk_id), ("bos", trainer.bos_id), ("eos", trainer.eos_id),
                        ("pad", trainer.pad_id)):
        if 0 <= index < len(pieces):
            specials[f"{role}_token"] = pieces[index].piece
    return tokenizer, specials
