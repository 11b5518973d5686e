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
    """The edits that turn the reference's words into the hypothesis's.

    What :func:`word_errors` returns: the counts behind a word error rate, kept apart so a
    notebook can see whether a recognizer drops words, adds them or mishears them. Two of them
    add up (``a + b``) to the counts of both texts together, as a corpus figure.

    Args:
        substitutions: Reference words heard as another word.
        deletions: Reference words the hypothesis left out.
        insertions: Hypothesis words the reference does not have.
        reference_words: The reference's words after normalisation.

    Example:
        >>> from realtime_widget.evaluate import word_errors
        >>> e = word_errors("book a table for two", "book the table for two please")
        >>> e
        WordErrors(substitutions=1, deletions=0, insertions=1, reference_words=5)
        >>> e.errors, e.rate
        (2, 0.4)
    """

    substitutions: int
    deletions: int  # reference words the hypothesis left out
    insertions: int  # hypothesis words the reference does not have
    reference_words: int

    @property
    def errors(self) -> int:
        """All the edits: substitutions + deletions + insertions."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """The word error rate: errors / reference_words.

        0.0 for nothing against nothing. Reading it raises ``ValueError`` when the reference is
        empty and the hypothesis is not (the rate is undefined; the counts are still there).
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
    """``text``'s words as the rate compares them.

    Lower case (with a typographic apostrophe read as ``'``), punctuation dropped and splitting
    words, except an apostrophe inside a word and a ``.`` or ``,`` between digits; numbers are
    not converted (see the module's doc). Use it to see why two texts differ.

    Args:
        text: Any text: a transcript, a script's line.

    Returns:
        The words, in order.

    Raises:
        TypeError: ``text`` is not a ``str``.

    Example:
        >>> from realtime_widget.evaluate import normalized_words
        >>> normalized_words("Don't book the real-time 3.5 o'clock slot!")
        ["don't", 'book', 'the', 'real', 'time', '3.5', "o'clock", 'slot']
    """
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
    """Substitutions, deletions and insertions from ``reference`` to ``hypothesis``.

    Both texts are normalised as :func:`normalized_words` does, then aligned word by word
    (Levenshtein, each edit costing 1). Unlike :func:`word_error_rate` it never raises for an
    empty reference: the counts are defined in every case.

    Args:
        reference: What was really said: a text, or a list of texts.
        hypothesis: What was heard (a transcript): a text, or a list of texts paired one to one
            with ``reference`` (the counts are summed over the pairs).

    Returns:
        The counts, as a :class:`WordErrors`.

    Raises:
        TypeError: The two are not both a ``str`` or both a list of ``str``.
        ValueError: Two lists of different lengths.

    Example:
        >>> from realtime_widget.evaluate import word_errors
        >>> word_errors(["a table for two", "at eight"], ["a table for", "at 8 pm"])
        WordErrors(substitutions=1, deletions=1, insertions=1, reference_words=6)
    """
    total = WordErrors(0, 0, 0, 0)
    for ref, hyp in _pairs(reference, hypothesis):
        total += _align(normalized_words(ref), normalized_words(hyp))
    return total


def word_error_rate(reference: str | Sequence[str], hypothesis: str | Sequence[str]) -> float:
    """How many words a recognizer got wrong, as a share of the words really said.

    (substitutions + deletions + insertions) / reference words, after normalisation (lower case,
    punctuation stripped, numbers not converted: see the module's doc). Two lists give the
    corpus rate: all the edits over all the reference words. The rate can be above 1 when the
    hypothesis has many extra words.

    Args:
        reference: What was really said: a text, or a list of texts.
        hypothesis: What was heard (a transcript): a text, or a list of texts paired one to one
            with ``reference``.

    Returns:
        The rate, 0.0 for a perfect transcript. An empty reference gives 0.0 against an empty
        hypothesis.

    Raises:
        ValueError: The reference has no words and the hypothesis has some (use
            :func:`word_errors` for the counts), or two lists of different lengths.
        TypeError: The two are not both a ``str`` or both a list of ``str``.

    Example:
        >>> from realtime_widget.evaluate import word_error_rate
        >>> word_error_rate("I'd like a table for two", "I like a table for two")
        0.16666666666666666
        >>> word_error_rate("ten people", "10 people")  # numbers are not converted
        0.5
    """
    return word_errors(reference, hypothesis).rate
