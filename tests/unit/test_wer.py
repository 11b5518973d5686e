"""word_error_rate: normalisation, each kind of edit, corpus figures and empty references."""

from __future__ import annotations

import pytest

from realtime_widget.evaluate._wer import (
    WordErrors,
    normalized_words,
    word_error_rate,
    word_errors,
)


def test_exact_match_is_zero() -> None:
    assert word_error_rate("Please book a table for two", "Please book a table for two") == 0.0
    assert word_errors("a b c", "a b c") == WordErrors(0, 0, 0, 3)


def test_case_and_punctuation_do_not_count() -> None:
    assert word_error_rate("What is the weather in Paris?", " what is the weather, in paris.") == 0
    assert word_error_rate("Turn off the lights!", '"Turn off" -- the LIGHTS') == 0.0


def test_normalisation_rules() -> None:
    assert normalized_words("Don't call at six o\u2019clock!") == [
        "don't",
        "call",
        "at",
        "six",
        "o'clock",
    ]
    assert normalized_words("real-time, 3.5 kg; 1,000 people") == [
        "real", "time", "3.5", "kg", "1,000", "people",
    ]  # fmt: skip
    assert normalized_words("rock 'n' roll ... 'quoted'") == ["rock", "n", "roll", "quoted"]
    assert normalized_words("Straße ÉTÉ") == ["strasse", "été"]
    assert normalized_words("  ?! -- ") == []
    assert normalized_words("snake_case") == ["snake", "case"]


def test_numbers_are_not_converted() -> None:
    e = word_errors("set a timer for ten minutes", "Set a timer for 10 minutes.")
    assert e == WordErrors(1, 0, 0, 6)
    assert word_error_rate("set a timer for ten minutes", "set a timer for 10 minutes") == 1 / 6


def test_substitutions() -> None:
    e = word_errors("the cat sat on the mat", "the cat sat on a hat")
    assert e == WordErrors(substitutions=2, deletions=0, insertions=0, reference_words=6)
    assert e.rate == pytest.approx(2 / 6)


def test_deletions() -> None:
    e = word_errors("turn the volume down please", "turn volume down")
    assert e == WordErrors(substitutions=0, deletions=2, insertions=0, reference_words=5)
    assert word_errors("one two three", "") == WordErrors(0, 3, 0, 3)
    assert word_error_rate("one two three", "") == 1.0


def test_insertions_can_take_the_rate_above_one() -> None:
    e = word_errors("hello", "oh hello there my friend")
    assert e == WordErrors(substitutions=0, deletions=0, insertions=4, reference_words=1)
    assert e.rate == 4.0


def test_mixed_edits_take_the_shortest_alignment() -> None:
    # "a" deleted, "x" substituted for "c", "e" inserted: 3 edits over 4 reference words
    e = word_errors("a b c d", "b x d e")
    assert e.errors == 3
    assert e == WordErrors(1, 1, 1, 4)
    assert word_error_rate("a b c d", "b x d e") == 0.75
    # the distance never exceeds max(len(ref), len(hyp))
    assert word_errors("a b c", "x y z w").errors == 4


def test_word_order_matters() -> None:
    assert word_errors("a b", "b a").errors == 2


def test_empty_reference_rule() -> None:
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("  ... ", "?") == 0.0  # nothing left of either after normalisation
    assert word_errors("", "hello there") == WordErrors(0, 0, 2, 0)
    with pytest.raises(ValueError, match=r"reference has no words.*2 word"):
        word_error_rate("", "hello there")


def test_corpus_rate_sums_edits_over_all_reference_words() -> None:
    refs = ["one two three four", "five six"]
    hyps = ["one two three four", "five"]
    # per-text rates 0 and 0.5 would average 0.25; the corpus figure is 1 edit / 6 words
    assert word_error_rate(refs, hyps) == pytest.approx(1 / 6)
    assert word_errors(refs, hyps) == WordErrors(0, 1, 0, 6)
    # an empty reference inside a corpus is fine: its words are insertions
    assert word_error_rate(["a b", ""], ["a b", "c"]) == 0.5
    assert word_error_rate([], []) == 0.0
    assert word_errors(("a",), ("b",)) == WordErrors(1, 0, 0, 1)


def test_word_errors_add() -> None:
    assert WordErrors(1, 2, 3, 10) + WordErrors(1, 0, 0, 5) == WordErrors(2, 2, 3, 15)


@pytest.mark.parametrize(
    ("reference", "hypothesis", "error", "words"),
    [
        ("a", ["a"], TypeError, "both be a str, or both a list of str"),
        (["a"], "a", TypeError, "got list and str"),
        (["a", "b"], ["a"], ValueError, "reference has 2 texts but hypothesis has 1"),
        (["a", 3], ["a", "b"], TypeError, r"reference\[1\] must be a str; got int"),
        (["a"], [None], TypeError, r"hypothesis\[0\] must be a str; got NoneType"),
        (None, None, TypeError, "got NoneType and NoneType"),
        (b"a", b"a", TypeError, "got bytes and bytes"),
        ({"a"}, {"a"}, TypeError, "got set and set"),
    ],
)
def test_bad_input_names_the_field(
    reference: object, hypothesis: object, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        word_error_rate(reference, hypothesis)  # type: ignore[arg-type]


def test_normalized_words_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="text must be a str; got bytes"):
        normalized_words(b"hello")  # type: ignore[arg-type]
