"""The JSON shapes a bilingual dictionary may come in (used by :mod:`tokmap_ui.io.dictionaries`).

Accepted:
    ``[{"src": "kat", "tgt": "cat", "weight": 2}]`` (or ``source``/``target``, ``word``/``translation``)
    ``[{"nl": "kat", "en": "cat"}]``  language codes as keys; ``src=``/``tgt=`` pick two
    ``[["kat", "cat"], ["hond", "dog", 0.5]]``
    ``{"kat": "cat"}``, ``{"kat": ["cat", "puss"]}``, ``{"kat": {"cat": 0.8, "puss": 0.2}}``

A wrong shape is an error naming the field (``[3].tgt``, ``kat[1]``), not a skipped line: a
JSON file is written by a program, so one bad element means the program is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokmap_ui.dictionary import SRC_NAMES, TGT_NAMES, WEIGHT_NAMES, WordPair, is_language_code, parse_weight
from tokmap_ui.errors import DictionaryError

JSON_FIX = 'use [{"src": "kat", "tgt": "cat"}, ...] or {"kat": ["cat", ...], ...}'


@dataclass
class JsonPairs:
    """Pairs read from JSON, with the language labels found (or given)."""

    pairs: list[WordPair] = field(default_factory=list)
    src_lang: str | None = None
    tgt_lang: str | None = None


def parse_json_dictionary(text: str, path: Path, src: str | None = None,
                          tgt: str | None = None) -> JsonPairs:
    """Parse JSON ``text`` of ``path`` into pairs; ``src``/``tgt`` pick keys or label languages.

    Example:
        >>> r = parse_json_dictionary('[{"nl": "kat", "en": "cat"}]', Path("d.json"))
        >>> r.pairs, r.src_lang, r.tgt_lang
        ([WordPair(src='kat', tgt='cat', weight=1.0)], 'nl', 'en')
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DictionaryError(path, f"is not valid JSON: {err.msg} (column {err.colno})", line=err.lineno,
                              fix="repair the JSON (a trailing comma or an unquoted word is the usual cause)"
                              ) from None
    except RecursionError:
        raise DictionaryError(path, "nests JSON lists or objects too deeply", fix=JSON_FIX) from None
    result = JsonPairs(src_lang=src, tgt_lang=tgt)
    if isinstance(data, dict):
        _word_map(data, path, result)
    elif isinstance(data, list):
        _pair_list(data, path, src, tgt, result)
    else:
        raise DictionaryError(path, f"holds a JSON {type(data).__name__}, not a list of pairs or a word map",
                              fix=JSON_FIX)
    return result


def _word_map(data: dict, path: Path, result: JsonPairs) -> None:
    """{"kat": "cat"}, {"kat": ["cat", "puss"]} or {"kat": {"cat": 0.8}}."""
    for word, value in data.items():
        if isinstance(value, str):
            result.pairs.append(WordPair(word, value))
        elif isinstance(value, list):
            for k, item in enumerate(value):
                _require_str(item, path, f"{word}[{k}]")
                result.pairs.append(WordPair(word, item))
        elif isinstance(value, dict):
            for item, weight in value.items():
                result.pairs.append(WordPair(word, item, _weight(weight, path, f"{word}.{item}")))
        else:
            raise DictionaryError(path, f"maps {word!r} to a {type(value).__name__}", field=word,
                                  fix="map each word to a translation, a list of them, or {translation: weight}")


def _pair_list(data: list, path: Path, src: str | None, tgt: str | None, result: JsonPairs) -> None:
    """[{"src": .., "tgt": .., "weight": ..}], [{"en": .., "nl": ..}] or [["kat", "cat", 1.0]]."""
    keys: tuple[str, str, str | None] | None = None
    for k, item in enumerate(data):
        if isinstance(item, list):
            if not 2 <= len(item) <= 3:
                raise DictionaryError(path, f"has a list of {len(item)} items; expected [word, translation]"
                                      " or [word, translation, weight]", field=f"[{k}]", fix=JSON_FIX)
            _require_str(item[0], path, f"[{k}][0]")
            _require_str(item[1], path, f"[{k}][1]")
            weight = _weight(item[2], path, f"[{k}][2]") if len(item) == 3 else 1.0
            result.pairs.append(WordPair(item[0], item[1], weight))
            continue
        if not isinstance(item, dict):
            raise DictionaryError(path, f"has a {type(item).__name__} where a pair object belongs",
                                  field=f"[{k}]", fix=JSON_FIX)
        if keys is None:  # the first object decides the keys; every later one must have them
            keys = _choose_keys(item, path, src, tgt, result, k)
        src_key, tgt_key, weight_key = keys
        for key in (src_key, tgt_key):
            if key not in item:
                raise DictionaryError(path, f"has no {key!r} key (keys: {', '.join(map(repr, item))})",
                                      field=f"[{k}].{key}", fix=JSON_FIX)
            _require_str(item[key], path, f"[{k}].{key}")
        weight = 1.0
        if weight_key is not None and item.get(weight_key) is not None:
            weight = _weight(item[weight_key], path, f"[{k}].{weight_key}")
        result.pairs.append(WordPair(item[src_key], item[tgt_key], weight))


def _choose_keys(item: dict, path: Path, src: str | None, tgt: str | None, result: JsonPairs,
                 k: int) -> tuple[str, str, str | None]:
    """Pick the source, target and weight keys from the first pair object; set language labels."""
    names = list(item)
    langs = [n for n in names if is_language_code(n)]

    def match(arg: str | None) -> str | None:
        """The key ``arg`` names: exact, else the one language key with the same base ('fy-NL' ~ 'fy')."""
        if arg is None or arg in item:
            return arg
        base = [n for n in langs if _base(n) == _base(arg)]
        return base[0] if len(base) == 1 else None

    def pick(arg: str | None, aliases: tuple[str, ...], taken: str | None, side: str) -> str:
        key = match(arg)
        if key is not None:
            if is_language_code(key):
                setattr(result, f"{side}_lang", key)
            elif key in aliases:
                setattr(result, f"{side}_lang", None)
            return key
        alias = next((a for a in aliases if a in item), None)
        if alias is not None:  # keys are src/tgt: the argument only labels the language
            return alias
        free = [n for n in langs if n != taken]
        if arg is None and len(langs) >= 2 and free:
            setattr(result, f"{side}_lang", free[0])
            return free[0]
        wanted = arg or aliases[0]
        keys = ", ".join(map(repr, names))
        raise DictionaryError(path, f"has no {wanted!r} key (keys: {keys})", field=f"[{k}].{wanted}",
                              fix=f"pass one of {keys} as {side}" if arg else JSON_FIX)

    src_key = pick(src, SRC_NAMES, match(tgt), "src")
    tgt_key = pick(tgt, TGT_NAMES, src_key, "tgt")
    if src_key == tgt_key:
        raise DictionaryError(path, f"src and tgt both name the key {src_key!r}", field=f"[{k}]",
                              fix=f"pick two different keys out of {', '.join(map(repr, names))}")
    weight_key = next((n for n in WEIGHT_NAMES if n in item), None)
    return src_key, tgt_key, weight_key


def _base(code: str) -> str:
    return code.lower().replace("_", "-").split("-")[0]


def _require_str(value: Any, path: Path, where: str) -> None:
    if not isinstance(value, str):
        raise DictionaryError(path, f"has a {type(value).__name__} where a word (string) belongs",
                              field=where, fix=JSON_FIX)


def _weight(value: Any, path: Path, where: str) -> float:
    try:
        if isinstance(value, str):  # "0.5" in JSON is a mistake worth reporting, not guessing
            raise ValueError
        return parse_weight(value)
    except (TypeError, ValueError):
        raise DictionaryError(path, f"has weight {value!r}, not a number >= 0", field=where,
                              fix="give weights as plain numbers such as 1 or 0.5") from None
