"""The kind of thing a question asks for, and whether a sentence holds one.

"Who was fired?" wants a person, "when" a date, "how many" a number, "where" a place. A sentence
that repeats the question's words but holds nothing of the wanted kind is a weaker answer than
one that does: measured on SQuAD v1.1, this lifts answer-sentence accuracy of the baseline that
answers without the reader (docs/quality.md).
"""

from __future__ import annotations

import re
from collections.abc import Collection

_NUMBER_QUESTION = re.compile(
    r"\bhow (?:many|much|long|old|far|large|big|tall|high|fast|often|deep|wide|heavy)\b"
    r"|\bwhat (?:percentage|percent|proportion|fraction|number|amount|size|population)\b"
    r"|\bwhat (?:was|is|were) the (?:population|number|amount|percentage|total|cost|size)\b"
)
_DATE_QUESTION = re.compile(
    r"\bwhen\b|\b(?:what|which) (?:year|years|date|day|month|century|decade|time|period|era|season)\b"
)
_PERSON_QUESTION = re.compile(r"\b(?:who|whom|whose)\b|\bwhat (?:person|man|woman|king|president)\b")
_PLACE_QUESTION = re.compile(
    r"\bwhere\b|\b(?:what|which|in what|in which) (?:country|city|state|place|region|county|continent|town"
    r"|area|location|island|nation|province|district)\b"
)

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy"
    "|eighty|ninety|hundred|hundreds|thousand|thousands|million|millions|billion|billions|dozen|dozens|half"
)
_NUMBER = re.compile(rf"\d[\d,.]*\d|\d|\b(?:{_NUMBER_WORDS})\b", re.IGNORECASE)
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_DATE = re.compile(
    rf"\b(?:1\d{{3}}|20\d{{2}})s?\b|\b(?:{_MONTHS})\b"
    r"|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b"
    r"|\bcentur(?:y|ies)\b|\b\d+(?:st|nd|rd|th)\b"
    r"|\b(?:yesterday|today|tomorrow|last (?:week|month|year)|ago)\b"
    r"|\b(?:BC|BCE|AD|CE)\b|\b\d{1,2}:\d{2}\b",
    re.IGNORECASE,
)
# A capitalised word that does not open the sentence: a name of a person, place or body.
_NAME = re.compile(r"(?<=[\w,;:’'\")] )[A-Z][\w’'-]+")


def expected_type(question: str) -> str | None:
    """'number', 'date', 'person', 'place' or None for the thing the question asks for."""
    text = question.lower()
    for kind, pattern in (
        ("number", _NUMBER_QUESTION),
        ("date", _DATE_QUESTION),
        ("person", _PERSON_QUESTION),
        ("place", _PLACE_QUESTION),
    ):
        if pattern.search(text):
            return kind
    return None


def holds_type(kind: str | None, sentence: str, question_words: Collection[str]) -> bool:
    """True when the sentence holds something of `kind` that the question did not already say."""
    if kind is None:
        return False
    if kind == "number":
        return any(match.group(0).lower() not in question_words for match in _NUMBER.finditer(sentence))
    if kind == "date":
        return any(match.group(0).lower() not in question_words for match in _DATE.finditer(sentence))
    return any(match.group(0).lower() not in question_words for match in _NAME.finditer(sentence))
