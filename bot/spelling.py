"""Typos in questions, mended from the articles' own words before searching and reading.

"wh0 was fird??" is plain to a person; to BM25 "fird" is no word at all, and the reader sees a
question about nothing. A word is left alone when the articles or an English dictionary know it
(pyspellchecker's 160,000 words, so "bake" never becomes "make"); otherwise a look-alike digit is
read as its letter ("wh0" → "who"), or the closest word of the articles takes its place: within
one letter left out or added (a wrong letter counts two), or two for words of five letters or
more; the most frequent on a tie. The articles, not English at large, say what "fird" most likely
meant. Edit distances come from rapidfuzz.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping

from index.lexical import SURFACE_WORD as _WORD
from index.lexical import word_counts

_LOOKALIKES = str.maketrans({"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t"})
_SHORTEST = 3


class SpellingCorrector:
    """Mends unknown words of a question against the known words and the articles' words."""

    def __init__(self, article_texts: Iterable[str], english: Collection[str] | None = None) -> None:
        self._set_up(word_counts(article_texts), english)

    @classmethod
    def from_counts(
        cls, counts: Mapping[str, int], english: Collection[str] | None = None
    ) -> SpellingCorrector:
        """A corrector for articles whose words were counted already (an index keeps the counts)."""
        corrector = cls.__new__(cls)
        corrector._set_up(counts, english)
        return corrector

    def _set_up(self, counts: Mapping[str, int], english: Collection[str] | None) -> None:
        self._article_words = set(counts)
        self._english = english
        # Most frequent first, so a tie between two words one edit away goes to the commoner.
        ranked = Counter(counts).most_common()
        self._choices = [word for word, _ in ranked if len(word) >= _SHORTEST]

    def knows(self, word: str) -> bool:
        return word in self._article_words or word in self.english

    @property
    def english(self) -> Collection[str]:
        if self._english is None:
            from spellchecker import SpellChecker

            self._english = SpellChecker().word_frequency.dictionary
        return self._english

    def correct(self, question: str) -> str:
        return _WORD.sub(lambda match: self._mend(match.group()), question)

    def _mend(self, word: str) -> str:
        lowered = word.lower()
        if len(word) < _SHORTEST or lowered.isdigit() or self.knows(lowered):
            return word
        if any(char.isdigit() for char in lowered) and any(char.isalpha() for char in lowered):
            readable = lowered.translate(_LOOKALIKES)
            if self.knows(readable):
                return readable
            lowered = readable
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        # A letter left out or typed twice is the commonest typo: it costs 1, a wrong letter 2.
        limit = 2 if len(lowered) >= 5 else 1
        found = process.extractOne(
            lowered,
            self._choices,
            scorer=Levenshtein.distance,
            scorer_kwargs={"weights": (1, 1, 2)},
            score_cutoff=limit,
        )
        return str(found[0]) if found is not None else word
