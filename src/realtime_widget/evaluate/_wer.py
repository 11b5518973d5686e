"""Word error rate: how many words a recognizer got wrong, against what was really said.

``word_error_rate(reference, hypothesis)`` is (substitutions + deletions + insertions) divided
by the number of reference words, after both texts are normalised the same way:

- lower case (``str.casefold``), with a typographic apostrophe (U+2019) read as ``'``;
- punctuation is dropped and splits words ("real-time" is "real time"), except an apostrophe
  between letters or digits ("don't", "o'clock") and a ``.`` or ``,`` between digits ("3.5",
  "1,000"), which stay inside the word;
- numbers are NOT converted: "ten" and "10" are different words, so a recognizer that writes
  digits for spoken numbers is charged a substitution for each. Compare like with like, or
  normalise numbers yourself before calling.

The edits are a word-level Levenshtein alignment (each edit costs 1). The rate can be above 1
when the hypothesis has many extra words. Given lists of texts, it is the corpus figure: all
the edits over all the reference words (not a mean of per-text rates).

An empty reference (no words after normalisation): the rate is 0.0 when the hypothesis is empty
too; otherwise it is undefined (n / 0) and a ``ValueError`` says so. ``word_errors()`` gives the
counts in every case, including that one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["WordErrors", "normalized_words", "word_error_rate", "word_errors"]

# A word: letters or digits, joined across an apostrophe, or across . or , between digits.
_WORD = re.compile(r"[^\W_]+(?:(?:'|(?<=\d)[.,](?=\d))[^\W_]+)*")


@dataclass(frozen=True)
class WordErrors:
    """The edits that turn the reference's words into the hypothesis's."""

    substitutions: int
    deletions: int  # reference words the hypothesis left out
    insertions: int  # hypothesis words the reference does not have
    reference_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Errors / reference_words.

        0.0 for nothing against nothing; ValueError when the reference is empty and the hypothesis
        is not.
        """
        if self.reference_words == 0:
            if self.errors == 0:
                return 0.0
            raise ValueError(
                "the reference has no words, so the word error rate is undefined "
                f"(the hypothesis has {self.insertions} word(s), all insertions); "
                "word_errors() gives the counts"
            )
        return self.errors / self.reference_words

    def __add__(self, other: WordErrors) -> WordErrors:
        if not isinstance(other, WordErrors):
            return NotImplemented
        return WordErrors(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


def normalized_words(text: str) -> list[str]:
    """``text``'s words as the rate compares them (see the module's doc)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str; got {type(text).__name__}")
    return _WORD.findall(text.casefold().replace("\u2019", "'"))


def _align(ref: list[str], hyp: list[str]) -> WordErrors:
    """Levenshtein over words, with the counts of each kind of edit along one best path."""
    n, m = len(ref), len(hyp)
    # cost[i][j]: edits turning ref[:i] into hyp[:j]
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        row, above = cost[i], cost[i - 1]
        for j in range(1, m + 1):
            row[j] = min(above[j - 1] + (ref[i - 1] != hyp[j - 1]), above[j] + 1, row[j - 1] + 1)
    subs = dels = ins = 0
    i, j = n, m
    while i or j:  # walk back: match/substitution first, then deletion, then insertion
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            subs += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            dels += 1
            i -= 1
        else:
            ins += 1
            j -= 1
    return WordErrors(subs, dels, ins, n)


def _pairs(
    reference: str | Sequence[str], hypothesis: str | Sequence[str]
) -> list[tuple[str, str]]:
    if isinstance(reference, str) and isinstance(hypothesis, str):
        return [(reference, hypothesis)]
    if (
        isinstance(reference, str | bytes)
        or isinstance(hypothesis, str | bytes)
        or not isinstance(reference, Sequence)
        or not isinstance(hypothesis, Sequence)
    ):
        raise TypeError(
            "reference and hypothesis must both be a str, or both a list of str of the same "
            f"length; got {type(reference).__name__} and {type(hypothesis).__name__}"
        )
    refs, hyps = list(reference), list(hypothesis)
    if len(refs) != len(hyps):
        raise ValueError(
            f"reference has {len(refs)} texts but hypothesis has {len(hyps)}: "
            "they must pair up one to one"
        )
    for field, texts in (("reference", refs), ("hypothesis", hyps)):
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"{field}[{index}] must be a str; got {type(text).__name__}")
    return list(zip(refs, hyps, strict=True))


def word_errors(reference: str | Sequence[str], hypothesis: str | Sequence[str]) -> WordErrors:
    """Substitutions, deletions and insertions from ``reference`` to ``hypothesis`` (a text
    each, or two lists of texts paired one to one, summed).
    """
    total = WordErrors(0, 0, 0, 0)
    for ref, hyp in _pairs(reference, hypothesis):
        total += _align(normalized_words(ref), normalized_words(hyp))
    return total


def word_error_rate(reference: str | Sequence[str], hypothesis: str | Sequence[str]) -> float:
    """(substitutions + deletions + insertions) / reference words, after normalisation (lower
    case, punctuation stripped, numbers not converted: see the module's doc). Two lists give
    the corpus rate. An empty reference gives 0.0 against an empty hypothesis and raises
    ``ValueError`` against any words.
    """
    return word_errors(reference, hypothesis).rate
