"""Bilingual dictionaries: every file format, every bad input, normalisation and the report."""

from __future__ import annotations

import json

import pytest

from tokmap_ui.dictionary import (Dictionary, DictionaryNormalisation, WordPair, inspect_dictionary,
                                  is_language_code, normalise_word)
from tokmap_ui.errors import DictionaryError, TokmapError
from tokmap_ui.io.dictionaries import inspect_dictionary_file, load_dictionary

# Excerpts of the real files in the shared data folder (FreeDict, Firefox UI strings, CLDR).
FREEDICT = """en\tnl\tsource
-able\t-baar\tfreedict-nld-eng
-ever\tdan ook\tfreedict-nld-eng
carryaway\tuitdragen\tfreedict-nld-eng
plate\tschaal\tfreedict-eng-nld+freedict-nld-eng
plate\tschotel\tfreedict-eng-nld+freedict-nld-eng
always\taltĳd\tfreedict-nld-eng
"""
FIREFOX_TRIPLES = """fy\tnl\ten\tcount
annulearje\tannuleren\tcancel\t72
slute\tsluiten\tclose\t54
blêdwizers\tbladwijzers\tbookmarks\t27
slute\tsluiten\tdismiss\t26
"""
FIREFOX_PAIRS = "fy\tnl\tcount\nslute\tsluiten\t133\nannulearje\tannuleren\t112\n"
CLDR = """fy\tnl\ten\tkind
Wrâld\twereld\tworld\tcldr-territories
Afrika\tAfrika\tAfrica\tcldr-territories
Arabysk\tArabisch\tArabic\tcldr-languages
Arabysk\tArabisch\tArabic\tcldr-scripts
Meardere talen\tmeerdere talen\tMultiple languages\tcldr-languages
"""


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode(encoding))
    return path


def pairs_of(dictionary):
    return [(p.src, p.tgt) for p in dictionary.pairs]


# ----------------------------------------------------------------------------- formats

def test_freedict_excerpt_language_columns_and_nfkc(tmp_path):
    d = load_dictionary(write(tmp_path, "en-nl.freedict.tsv", FREEDICT))
    assert (d.src_lang, d.tgt_lang, d.name) == ("en", "nl", "en-nl.freedict.tsv")
    assert len(d.pairs) == 6 and d.rejected == ()
    assert ("-ever", "dan ook") in pairs_of(d)
    assert ("always", "altijd") in pairs_of(d)  # U+0133 ligature became 'ij'
    assert all(p.weight == 1.0 for p in d.pairs)  # 'source' is provenance, not a weight


def test_firefox_triples_choose_columns_and_count_weight(tmp_path):
    path = write(tmp_path, "fy-nl-en.firefox-ui.tsv", FIREFOX_TRIPLES)
    d = load_dictionary(path)
    assert (d.src_lang, d.tgt_lang) == ("fy", "nl")
    assert d.pairs[0] == WordPair("annulearje", "annuleren", 72.0)
    assert d.pairs[1] == WordPair("slute", "sluiten", 80.0) and d.duplicates == 1  # 54 + 26 merged
    d = load_dictionary(path, src="fy", tgt="en")
    assert (d.src_lang, d.tgt_lang) == ("fy", "en")
    assert ("slute", "dismiss") in pairs_of(d)
    d = load_dictionary(path, src="nl")  # tgt defaults to the first other language column
    assert (d.src_lang, d.tgt_lang) == ("nl", "fy")
    d = load_dictionary(path, src="EN", tgt="fy-NL")  # case and region do not matter
    assert (d.src_lang, d.tgt_lang) == ("en", "fy")


def test_firefox_pairs_and_cldr_excerpts(tmp_path):
    d = load_dictionary(write(tmp_path, "fy-nl.firefox-ui.tsv", FIREFOX_PAIRS))
    assert d.pairs == (WordPair("slute", "sluiten", 133.0), WordPair("annulearje", "annuleren", 112.0))
    d = load_dictionary(write(tmp_path, "fy-nl-en.cldr.tsv", CLDR), src="fy", tgt="en")
    assert ("Meardere talen", "Multiple languages") in pairs_of(d)
    assert len(d.pairs) == 4 and d.duplicates == 1


def test_src_tgt_header_with_language_labels(tmp_path):
    path = write(tmp_path, "d.tsv", "src\ttgt\tweight\nkat\tcat\t0.5\nhond\tdog\t\n")
    d = load_dictionary(path, src="nl", tgt="en")
    assert (d.src_lang, d.tgt_lang) == ("nl", "en")
    assert d.pairs == (WordPair("kat", "cat", 0.5), WordPair("hond", "dog", 1.0))
    assert load_dictionary(write(tmp_path, "e.tsv", "source\ttarget\nkat\tcat\n")).pairs == (WordPair("kat", "cat"),)


def test_headerless_tsv_languages_from_name_or_arguments(tmp_path):
    d = load_dictionary(write(tmp_path, "nl-en.tsv", "kat\tcat\nde kat\tthe cat\n"))
    assert pairs_of(d) == [("kat", "cat"), ("de kat", "the cat")]
    assert (d.src_lang, d.tgt_lang) == ("nl", "en")
    d = load_dictionary(write(tmp_path, "words.tsv", "kat\tcat\n"), src="nl", tgt="en")
    assert (d.src_lang, d.tgt_lang) == ("nl", "en")
    assert load_dictionary(write(tmp_path, "x.tsv", "kat\tcat\n")).src_lang is None


def test_header_guess_can_be_overridden(tmp_path):
    path = write(tmp_path, "d.tsv", "te\tto\nkat\tcat\n")
    assert pairs_of(load_dictionary(path)) == [("kat", "cat")]  # guessed: a header of language codes
    assert pairs_of(load_dictionary(path, header=False)) == [("te", "to"), ("kat", "cat")]
    d = load_dictionary(write(tmp_path, "e.tsv", "dutch\tenglish\nkat\tcat\n"), header=True)
    assert (d.src_lang, pairs_of(d)) == ("dutch", [("kat", "cat")])
    assert pairs_of(load_dictionary(write(tmp_path, "f.tsv", "de\tthe\nkat\tcat\n"))) == [("de", "the"), ("kat", "cat")]


def test_csv_with_header_and_quotes(tmp_path):
    path = write(tmp_path, "d.csv", 'nl,en\nkat,cat\n"ja, zeker","yes, sure"\n')
    d = load_dictionary(path)
    assert pairs_of(d) == [("kat", "cat"), ("ja, zeker", "yes, sure")]
    assert (d.src_lang, d.tgt_lang) == ("nl", "en")


def test_muse_space_separated_pairs(tmp_path):
    d = load_dictionary(write(tmp_path, "en-nl.0-5000.txt", "the de\nthe het\ncat  kat\nthe cat de kat\n"))
    assert pairs_of(d) == [("the", "de"), ("the", "het"), ("cat", "kat")]
    assert (d.src_lang, d.tgt_lang) == ("en", "nl")
    assert [r.line for r in d.rejected] == [4] and "4 space-separated words" in d.rejected[0].reason


def test_json_list_of_objects(tmp_path):
    data = [{"src": "kat", "tgt": "cat", "weight": 2}, {"src": "hond", "tgt": "dog"}]
    d = load_dictionary(write(tmp_path, "d.json", json.dumps(data)), src="nl", tgt="en")
    assert d.pairs == (WordPair("kat", "cat", 2.0), WordPair("hond", "dog", 1.0))
    assert (d.src_lang, d.tgt_lang) == ("nl", "en")


def test_json_language_keys_and_lists(tmp_path):
    data = [{"fy": "slute", "nl": "sluiten", "en": "close"}]
    path = write(tmp_path, "d.json", json.dumps(data))
    d = load_dictionary(path)
    assert (d.src_lang, d.tgt_lang, pairs_of(d)) == ("fy", "nl", [("slute", "sluiten")])
    d = load_dictionary(path, src="en")
    assert (d.src_lang, d.tgt_lang, pairs_of(d)) == ("en", "fy", [("close", "slute")])
    d = load_dictionary(path, tgt="fy-NL")
    assert (d.src_lang, d.tgt_lang, pairs_of(d)) == ("nl", "fy", [("sluiten", "slute")])
    d = load_dictionary(write(tmp_path, "l.json", '[["kat", "cat"], ["hond", "dog", 0.5]]'))
    assert d.pairs == (WordPair("kat", "cat"), WordPair("hond", "dog", 0.5))


def test_json_word_maps(tmp_path):
    text = '{"kat": ["cat", "puss"], "hond": "dog", "huis": {"house": 0.8, "home": 0.2}}'
    d = load_dictionary(write(tmp_path, "nl-en.json", text))
    assert pairs_of(d) == [("kat", "cat"), ("kat", "puss"), ("hond", "dog"), ("huis", "house"), ("huis", "home")]
    assert d.pairs[-1].weight == 0.2 and (d.src_lang, d.tgt_lang) == ("nl", "en")


def test_json_detected_by_content_without_suffix(tmp_path):
    assert pairs_of(load_dictionary(write(tmp_path, "dict", '\ufeff {"kat": "cat"}'))) == [("kat", "cat")]


def test_bom_crlf_and_leading_comments(tmp_path):
    text = "\ufeff# made by hand\r\n\r\nnl\ten\r\nkat\tcat\r\n\r\nhond\tdog\r\n"
    d = load_dictionary(write(tmp_path, "d.tsv", text))
    assert pairs_of(d) == [("kat", "cat"), ("hond", "dog")] and d.src_lang == "nl"


def test_language_codes():
    assert all(map(is_language_code, ["nl", "EN", "fy-NL", "en_US", "zh-Hans", "nld", "fry"]))
    assert not any(map(is_language_code, ["the", "source", "kat", "count", "nl-", ""]))


# ----------------------------------------------------------------------------- bad input

def load_error(path, **kwargs) -> DictionaryError:
    with pytest.raises(DictionaryError) as info:
        load_dictionary(path, **kwargs)
    assert isinstance(info.value, TokmapError) and "Fix:" in str(info.value)
    assert str(path) in str(info.value)
    return info.value


def test_missing_file_and_folder(tmp_path):
    assert "not found" in str(load_error(tmp_path / "nope.tsv"))
    assert "folder" in str(load_error(tmp_path))


def test_empty_file(tmp_path):
    assert "empty" in str(load_error(write(tmp_path, "d.tsv", "")))
    assert "no dictionary lines" in str(load_error(write(tmp_path, "b.tsv", "\n\n# comment\n")))


def test_binary_file(tmp_path):
    err = load_error(write(tmp_path, "d.tsv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))))
    assert "binary" in str(err)


def test_utf16_file(tmp_path):
    err = load_error(write(tmp_path, "d.tsv", "nl\ten\nkat\tcat\n", encoding="utf-16"))
    assert "UTF-16" in str(err) and "iconv" in str(err)


def test_latin1_file_names_the_line(tmp_path):
    err = load_error(write(tmp_path, "d.tsv", "nl\ten\nkat\tcat\ncafé\tcafe\n", encoding="latin-1"))
    assert err.line == 3 and "UTF-8" in str(err)


def test_one_column_only_names_the_line(tmp_path):
    err = load_error(write(tmp_path, "d.tsv", "kat\nhond\nhuis\n"))
    assert err.line == 1 and "only 1 word" in str(err) and "3 of 3 lines" in str(err)
    err = load_error(write(tmp_path, "h.tsv", "nl\ten\nkat\nhond\n"))
    assert err.line == 2 and "only 1 column" in str(err)


def test_ten_megabyte_single_line(tmp_path):
    err = load_error(write(tmp_path, "d.tsv", "kat\t" + "x" * 10_000_000))
    assert err.line == 1 and "10,000,004 characters" in str(err)


def test_broken_json_gives_line_and_column(tmp_path):
    err = load_error(write(tmp_path, "d.json", '[\n  {"src": "kat", "tgt": "cat"},\n]\n'))
    assert err.line == 3 and "column 1" in str(err) and "not valid JSON" in str(err)


@pytest.mark.parametrize("text, field", [
    ('"kat"', None),
    ('[{"src": "kat", "tgt": "cat"}, {"src": "hond"}]', "[1].tgt"),
    ('[{"src": "kat", "tgt": 3}]', "[0].tgt"),
    ('[{"word": "kat"}]', "[0].tgt"),
    ('[{"src": "kat", "tgt": "cat", "weight": "high"}]', "[0].weight"),
    ('[{"src": "kat", "tgt": "cat", "weight": -1}]', "[0].weight"),
    ('[["kat"]]', "[0]"),
    ('[42]', "[0]"),
    ('{"kat": 5}', "kat"),
    ('{"kat": ["cat", null]}', "kat[1]"),
])
def test_json_of_the_wrong_shape_names_the_field(tmp_path, text, field):
    err = load_error(write(tmp_path, "d.json", text))
    assert err.field == field
    if field:
        assert f"field '{field}'" in str(err)


def test_unknown_column_lists_the_available_ones(tmp_path):
    path = write(tmp_path, "d.tsv", FIREFOX_TRIPLES)
    err = load_error(path, src="de")
    assert err.line == 1 and "'fy', 'nl', 'en', 'count'" in str(err) and "'de'" in str(err)
    err = load_error(write(tmp_path, "d.json", '[{"nl": "kat", "en": "cat"}]'), src="de", tgt="en")
    assert err.field == "[0].de" and "pass one of 'nl', 'en' as src" in str(err)


def test_src_equal_to_tgt_column(tmp_path):
    err = load_error(write(tmp_path, "d.tsv", FIREFOX_TRIPLES), src="nl", tgt="nl")
    assert "both name column 'nl'" in str(err)
    err = load_error(write(tmp_path, "d.json", '[{"nl": "kat", "en": "cat"}]'), src="nl", tgt="nl")
    assert "both name the key 'nl'" in str(err)


def test_a_few_bad_lines_are_rejected_and_counted(tmp_path):
    text = "nl\ten\tcount\nkat\tcat\t1\nlosse regel\nhond\tdog\tveel\nhuis\thouse\t2\n\tempty\nboom\ttree\t3\n"
    d = load_dictionary(write(tmp_path, "d.tsv", text))
    assert pairs_of(d) == [("kat", "cat"), ("huis", "house"), ("boom", "tree")]
    assert [r.line for r in d.rejected] == [3, 4, 6]
    assert "only 1 column" in d.rejected[0].reason and d.rejected[0].text == "losse regel"
    assert "'veel' is not a number" in d.rejected[1].reason
    assert "empty source" in d.rejected[2].reason


def test_more_than_half_bad_is_an_error(tmp_path):
    err = load_error(write(tmp_path, "d.tsv", "kat\tcat\nhond\nhuis\n"))
    assert "2 of 3 lines are unusable" in str(err) and err.line == 2


def test_zero_usable_pairs_is_an_error(tmp_path):
    assert "no dictionary pairs" in str(load_error(write(tmp_path, "d.tsv", "nl\ten\n\n")))
    assert "no dictionary pairs" in str(load_error(write(tmp_path, "d.json", "[]")))
    err = load_error(write(tmp_path, "e.json", '{"kat": "  "}'))
    assert "no usable pairs" in str(err) and "empty target" in str(err)


# ----------------------------------------------------------------------------- normalisation

def test_normalise_word_steps():
    assert normalise_word("  Bĳ \u00a0 de\tweg ") == "Bij de weg"
    assert normalise_word("Ｋａｔ") == "Kat"  # full-width letters, NFKC
    assert normalise_word("Bĳ", DictionaryNormalisation(nfkc=False, casefold=True)) == "bĳ"
    assert normalise_word(" a  b ", DictionaryNormalisation(whitespace=False)) == " a  b "


def test_normalisation_options_when_loading(tmp_path):
    path = write(tmp_path, "d.tsv", "nl\ten\nKat\tcat\nkat\tcat\naltĳd\talways\n kat \tcat\n")
    d = load_dictionary(path)
    assert d.pairs == (WordPair("Kat", "cat"), WordPair("kat", "cat", 2.0), WordPair("altijd", "always"))
    d = load_dictionary(path, normalisation=DictionaryNormalisation(casefold=True))
    assert d.pairs[0] == WordPair("kat", "cat", 3.0) and d.duplicates == 2
    d = load_dictionary(path, normalisation=DictionaryNormalisation(nfkc=False, whitespace=False,
                                                                    drop_duplicates=False))
    assert len(d.pairs) == 4 and ("altĳd", "always") in pairs_of(d) and (" kat ", "cat") in pairs_of(d)


def test_drop_empty_option(tmp_path):
    path = write(tmp_path, "d.tsv", "nl\ten\nkat\tcat\nhond\t \nhuis\thouse\n")
    assert len(load_dictionary(path).pairs) == 2
    kept = load_dictionary(path, normalisation=DictionaryNormalisation(drop_empty=False))
    assert ("hond", "") in pairs_of(kept) and kept.rejected == ()


def test_dictionary_object_helpers():
    d = Dictionary.from_pairs([("kat", "cat"), ("kat ", "cat", 2.0), ("hond", "")], "nl", "en")
    n = d.normalised()
    assert n.pairs == (WordPair("kat", "cat", 3.0),) and n.duplicates == 1
    assert len(n.rejected) == 1 and "pair 3: empty target" in n.rejected[0].reason
    assert d.pairs[1].src == "kat "  # the original is untouched (frozen)
    r = n.reversed()
    assert (r.src_lang, r.tgt_lang, r.pairs) == ("en", "nl", (WordPair("cat", "kat", 3.0),))
    assert r.reversed() == n
    assert Dictionary.from_pairs([("a", "x"), ("a", "y", 2.0)]).translations() == {"a": [("x", 1.0), ("y", 2.0)]}
    with pytest.raises(Exception):
        n.name = "other"  # frozen


# ----------------------------------------------------------------------------- report

def test_report_numbers():
    d = Dictionary.from_pairs([("kat", "cat"), ("kat", "cat"), ("de kat", "the cat"), ("kat", "puss"),
                               ("Afrika", "Afrika")], "nl", "en")
    report = inspect_dictionary(d)
    assert (report.pairs, report.unique_src, report.unique_tgt) == (5, 3, 4)
    assert report.duplicates == 1  # not yet normalised: still present
    assert report.multiword_src == pytest.approx(1 / 3) and report.multiword_tgt == pytest.approx(1 / 4)
    assert report.identical == pytest.approx(1 / 5)
    after = inspect_dictionary(d.normalised())
    assert (after.pairs, after.duplicates, after.weighted) == (4, 1, True)  # merged but still counted


def test_report_on_file_to_dict_and_text(tmp_path):
    text = FREEDICT + "broken line\n"
    report = inspect_dictionary_file(write(tmp_path, "en-nl.freedict.tsv", text))
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["pairs"] == 6 and data["src_lang"] == "en" and data["tgt_lang"] == "nl"
    assert data["rejected"] == 1 and data["rejected_examples"][0]["line"] == 8
    assert 1 <= len(data["examples"]) <= 5 and all(e["src"] and e["tgt"] for e in data["examples"])
    shown = report.to_text()
    assert "6 pairs, en → nl" in shown and "rejected lines: 1" in shown and "line 8" in shown
    assert len(shown.splitlines()) < 15


def test_report_notes_unknown_languages(tmp_path):
    report = inspect_dictionary_file(write(tmp_path, "words.tsv", "kat\tcat\n"))
    assert report.src_lang is None and any("languages unknown" in n for n in report.notes)
    assert "source → target" in report.to_text()
