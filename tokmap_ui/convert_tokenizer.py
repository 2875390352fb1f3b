"""The converted model's tokenizer: the source model's special-token template with the target's ids.

A model learnt to read its inputs framed in a fixed way: BERT sees ``[CLS] A [SEP]`` (pairs
``[CLS] A [SEP] B [SEP]`` with type ids 1 on B), RoBERTa ``<s> A </s></s> B </s>``, Llama ``<s> A``,
GPT-2 nothing. After conversion the target tokenizer must frame inputs the same way, by *role*,
with its own ids: a BERT converted to a RoBERTa-style vocabulary reads ``<s> A </s>`` where ``<s>``
and ``</s>`` have the target's ids. A post-processor copied blindly with a hard-coded ``sep`` id is
the classic failure (research/tiktotok.md §3.3), so the template is rebuilt from roles and probed.

Example:
    >>> tok, template = build_target_tokenizer(dutch_tok, {"cls": 0, "sep": 2, "pad": 1}, bert,
    ...                                        source_tokenizer=bert_tok, source_roles=bert_roles)  # doctest: +SKIP
    >>> template                                                                          # doctest: +SKIP
    '<s> $A </s> | <s> $A </s> $B:1 </s>:1'
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tokmap_ui.errors import TokenizerError

ROLES = ("bos", "eos", "pad", "unk", "sep", "cls", "mask")
# When a source special token plays several roles (RoBERTa's <s> is bos and cls), the structural
# one wins; when the target lacks a role, its twin stands in (cls <-> bos, sep <-> eos).
_PREFERENCE = ("cls", "sep", "bos", "eos", "mask", "pad", "unk")
_TWIN = {"cls": "bos", "bos": "cls", "sep": "eos", "eos": "sep"}
_HUGE = 10_000_000  # transformers writes 1e30 for "no limit"

Piece = tuple[str, int, int]  # ("A" | "B" | "special", target id (or -1), type id)


def _bare(backend: Any) -> Any:
    """A copy of a ``tokenizers.Tokenizer`` without fixed padding or truncation.

    Some tokenizer.json files pad every input to a fixed length (all-MiniLM-L6-v2: 128, with
    pad id 0); transformers pads per call, and a copied ``pad_id`` would be the wrong vocabulary's.
    """
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_padding()
    copy.no_truncation()
    return copy


def _probe(backend: Any) -> tuple[list[Piece], list[Piece]]:
    """The template a ``tokenizers.Tokenizer`` applies, read off encodings of 'a' and ('a', 'b')."""
    backend = _bare(backend)
    def pieces(encoding: Any) -> list[Piece]:
        out: list[Piece] = []
        for token_id, type_id, seq in zip(encoding.ids, encoding.type_ids, encoding.sequence_ids):
            if seq is None:
                out.append(("special", token_id, type_id))
            elif not out or out[-1][0] != "AB"[seq]:
                out.append(("AB"[seq], -1, type_id))
        return out

    return pieces(backend.encode("a")), pieces(backend.encode("a", "b"))


def _render(single: list[Piece], pair: list[Piece], id_to_token: Any) -> tuple[list[str], list[str], list]:
    def items(template: list[Piece]) -> list[str]:
        return [f"${kind}:{type_id}" if kind != "special" else f"{id_to_token(tid)}:{type_id}"
                for kind, tid, type_id in template]

    specials = sorted({(id_to_token(tid), tid) for kind, tid, _ in single + pair if kind == "special"},
                      key=lambda x: x[1])
    return items(single), items(pair), specials


def describe(single: list[Piece], pair: list[Piece], id_to_token: Any) -> str:
    """Human form: ``[CLS] $A [SEP] | [CLS] $A [SEP] $B:1 [SEP]:1`` (``:0`` omitted)."""
    a, b, _ = _render(single, pair, id_to_token)
    strip = lambda xs: " ".join(x[:-2] if x.endswith(":0") else x for x in xs)  # noqa: E731
    return f"{strip(a)} | {strip(b)}"


def _target_id(source_id: int, source_roles: dict[str, int], target_roles: dict[str, int],
               source_token: str, target_tokenizer: Any) -> int:
    roles = [r for r in _PREFERENCE if source_roles.get(r) == source_id]
    for role in roles + [_TWIN[r] for r in roles if r in _TWIN]:
        if role in target_roles:
            return target_roles[role]
    same = target_tokenizer.convert_tokens_to_ids(source_token)
    if same is not None and same != target_tokenizer.unk_token_id:
        return same
    what = "/".join(roles) or repr(source_token)
    raise TokenizerError("target tokenizer", f"has no {what} token, but the source model's inputs carry "
                         f"{source_token!r}", fix=f"add a {what} special token to the target tokenizer")


def _mirror_source(source_tokenizer: Any, source_roles: dict[str, int], target_roles: dict[str, int],
                   target_tokenizer: Any) -> tuple[list[Piece], list[Piece]]:
    single, pair = _probe(source_tokenizer.backend_tokenizer)
    to_token = source_tokenizer.convert_ids_to_tokens

    def mirror(template: list[Piece]) -> list[Piece]:
        return [(kind, _target_id(tid, source_roles, target_roles, to_token(tid), target_tokenizer)
                 if kind == "special" else tid, type_id) for kind, tid, type_id in template]

    return mirror(single), mirror(pair)


def _is_encoder(model: Any) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return (not getattr(model.config, "is_decoder", False) and not model.can_generate()
            and model.config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES)


def _family_template(model: Any, target_roles: dict[str, int]) -> tuple[list[Piece], list[Piece]] | None:
    """Without the source tokenizer: encoders get ``cls A sep``; decoders keep the target's own."""
    if not _is_encoder(model):
        return None
    cls = target_roles.get("cls", target_roles.get("bos"))
    sep = target_roles.get("sep", target_roles.get("eos"))
    if cls is None or sep is None:
        raise TokenizerError("target tokenizer", "has no cls/sep (or bos/eos) tokens, which an encoder needs",
                             fix="add [CLS]/[SEP]-style special tokens to the target tokenizer")
    single: list[Piece] = [("special", cls, 0), ("A", -1, 0), ("special", sep, 0)]
    if getattr(model.config, "type_vocab_size", 1) > 1:  # BERT: B gets segment 1
        pair = single + [("B", -1, 1), ("special", sep, 1)]
    else:                                                # RoBERTa: </s></s> between
        pair = single + [("special", sep, 0), ("B", -1, 0), ("special", sep, 0)]
    return single, pair


def build_target_tokenizer(target_tokenizer: Any, target_roles: dict[str, int], model: Any, *,
                           source_tokenizer: Any = None, source_roles: dict[str, int] | None = None,
                           model_max_length: int | None = None) -> tuple[Any, str]:
    """A copy of ``target_tokenizer`` framing inputs like the source model; returns (tokenizer, template).

    The post-processor is replaced only when the target's own template differs from the wanted one.
    The copy is a plain ``PreTrainedTokenizerFast`` so ``AutoTokenizer`` reloads exactly this
    template (model-specific classes such as v5 ``BertTokenizer`` rebuild their own on load).
    """
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = _bare(target_tokenizer.backend_tokenizer)
    if source_tokenizer is not None and hasattr(source_tokenizer, "backend_tokenizer"):
        wanted = _mirror_source(source_tokenizer, source_roles or {}, target_roles, target_tokenizer)
    else:
        wanted = _family_template(model, target_roles)
    to_token = target_tokenizer.convert_ids_to_tokens
    if wanted is not None and wanted != _probe(backend):
        single, pair, specials = _render(*wanted, to_token)
        backend.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)
    names = {f"{role}_token": to_token(token_id) for role, token_id in target_roles.items() if role in ROLES}
    kwargs: dict[str, Any] = {"padding_side": getattr(target_tokenizer, "padding_side", "right")}
    # The model's inputs: BERT needs token_type_ids for pairs; take the source tokenizer's list.
    names_from = source_tokenizer if source_tokenizer is not None else target_tokenizer
    inputs = list(getattr(names_from, "model_input_names", None) or ())
    if wanted is not None and any(piece[2] for piece in wanted[1]) and "token_type_ids" not in inputs:
        inputs.append("token_type_ids")
    if inputs:
        kwargs["model_input_names"] = inputs
    if model_max_length:
        kwargs["model_max_length"] = int(model_max_length)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **names, **kwargs)
    return tokenizer, describe(*_probe(backend), to_token)


def position_offset_module(model: Any) -> nn.Module | None:
    """The embeddings module of RoBERTa-style models (positions start at ``padding_idx + 1``), else None."""
    base = getattr(model, "base_model", model)
    embeddings = getattr(base, "embeddings", None)
    table = getattr(embeddings, "position_embeddings", None)
    if isinstance(table, nn.Embedding) and table.padding_idx is not None \
            and getattr(embeddings, "padding_idx", None) is not None:
        return embeddings
    return None


def model_max_length_for(model: Any, source_tokenizer: Any = None) -> int | None:
    """The source tokenizer's limit when it has one, else the model's usable positions."""
    limit = getattr(source_tokenizer, "model_max_length", None)
    if limit and 0 < limit < _HUGE:
        return int(limit)
    config = model.config
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if not positions:
        return None
    offset = position_offset_module(model)
    return int(positions - (offset.padding_idx + 1 if offset is not None else 0))


def fvt_source_ids(target_tokenizer: Any, source_tokenizer: Any, target_id: int) -> list[int]:
    """FVT (Gee et al. 2022): the source ids the source tokenizer splits a target token's text into.

    Word-continuation tokens are split as plain text (``at`` -> ``at``, not ``##at``): for MiniLM
    -> the demo kit's Dutch BPE, forcing ``##`` pieces dropped en-nl sentence-retrieval P@1 (1k
    candidates) from 0.181 to 0.122 on the dev split (0.175 to 0.126 on test).

    Example: target 'Ġkatten' -> text ' katten' -> source ['kat', '##ten'] -> their ids.
    """
    token = target_tokenizer.convert_ids_to_tokens(int(target_id))
    if token is None or token in set(target_tokenizer.all_special_tokens):
        return []
    text = target_tokenizer.convert_tokens_to_string([token])
    if token.startswith("##"):
        text = text[2:] if text.startswith("##") else text
    if not text.strip() or "\ufffd" in text:  # a lone byte of a multi-byte character
        return []
    return list(source_tokenizer(text, add_special_tokens=False)["input_ids"])
