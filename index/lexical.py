"""Words of a text as search and the answer step count them: tokens, stop words, Snowball stems, idf."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

# Words that carry no topic: bm25s's English list. Question words ("who", "when") stay searchable
# for BM25 but never count as the question's content when the answer step weighs overlap.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "  # noqa: SIM905
    "these they this to was will with".split()
)
QUESTION_WORDS = frozenset(
    "what which who whom whose when where why how did does do done was were is are has have had "  # noqa: SIM905
    "can could would should may might must shall according name named called".split()
)
# bm25s's own pattern: runs of two or more word characters, so "Nagorno-Karabakh" is two words.
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


# A word as written (letters and digits, inner apostrophes kept): what typos are mended against.
SURFACE_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def word_counts(texts: Iterable[str]) -> Counter[str]:
    """How often each word (lower-cased, as written) occurs in `texts`."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word.lower() for word in SURFACE_WORD.findall(text))
    return counts


def words(text: str) -> list[str]:
    """Lower-cased words of `text` without stop words, as written (not stemmed)."""
    return [word for word in _TOKEN.findall(text.lower()) if word not in STOPWORDS]


# Snowball leaves irregular verbs apart ("break" / "broke"), so a question in the present misses a
# news sentence in the past. Past forms that are also common other words ("found", "left", "saw",
# "rose", "felt") are left out.
_IRREGULAR_VERBS = (  # base form, then its past forms
    "arise arose arisen, awake awoke awoken, become became, begin began begun, bend bent, bet bet,"
    "bite bitten, blow blew blown, break broke broken, bring brought, build built,"
    "burn burnt, buy bought, catch caught, choose chose chosen, come came, cost cost, creep crept,"
    "deal dealt, dig dug, do did done, draw drew drawn, drink drank drunk, drive drove driven,"
    "eat ate eaten, fight fought, flee fled, fly flew flown, forbid forbade forbidden,"
    "forget forgot forgotten, forgive forgave forgiven, freeze froze frozen, get got gotten,"
    "give gave given, go went gone, grow grew grown, hang hung, have had has, hear heard,"
    "hide hid hidden, hold held, keep kept, know knew known, lead led, lend lent, lose lost,"
    "make made, mean meant, meet met, pay paid, ride rode ridden, ring rang rung, run ran, say said,"
    "see seen, seek sought, sell sold, send sent, shake shook shaken, shoot shot,"
    "shrink shrank shrunk, sing sang sung, sink sank sunk, sit sat, sleep slept, speak spoke spoken,"
    "spend spent, stand stood, steal stole stolen, strike struck stricken, swear swore sworn,"
    "swim swam swum, take took taken, teach taught, tear tore torn, tell told, think thought,"
    "throw threw thrown, understand understood, wake woke woken, wear wore worn, weep wept, win won,"
    "withdraw withdrew withdrawn, write wrote written"
)
_IRREGULAR = {past: entry.split()[0] for entry in _IRREGULAR_VERBS.split(",") for past in entry.split()[1:]}


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    stemmed: str = _stemmer().stemWord(_IRREGULAR.get(word, word))
    return stemmed


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-word-free, stemmed terms: the one tokenisation used everywhere."""
    return [[stem(word) for word in words(text)] for text in texts]


def bm25_idf(documents: int, containing: int) -> float:
    """BM25's smoothed idf as bm25s computes it (Lucene's): never negative."""
    return math.log(1 + (documents - containing + 0.5) / (containing + 0.5))
