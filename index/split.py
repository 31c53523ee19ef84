"""Article → paragraphs → sentences → passages, every piece keeping its character span."""

from __future__ import annotations

import bisect
import itertools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from index.articles import Article

log = logging.getLogger(__name__)

# all-MiniLM-L6-v2 reads 256 wordpieces; keep room for [CLS] and [SEP].
MAX_SENTENCE_TOKENS = 250
# pysbd reads at most this many words at once (see _pysbd_windows): 2.4 s for 1 MB of text
# without a full stop, where the whole of it would take hours. 53 of SQuAD v1.1 dev's 2,067
# paragraphs are longer, and are split exactly as when read whole.
PYSBD_WINDOW_WORDS = 500
_BLANK_LINE = re.compile(r"\n[ \t]*\n\s*")
_LINE_BREAK = re.compile(r"\n\s*")
_WORD = re.compile(r"\S+")
_LEADING_CLOSER = re.compile(r"([\"”’')\]]+)(?:\s+|$)")
PASSAGE_VECTORS = ("encoded", "pooled")


@dataclass(frozen=True)
class Sentence:
    """One sentence of an article; `start`/`end` index `Article.text`."""

    article_id: str
    index: int
    paragraph: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Passage:
    """Consecutive sentences of one article: the unit that is embedded and searched."""

    id: str
    article_id: str
    paragraph: int
    first_sentence: int
    last_sentence: int
    start: int
    end: int
    text: str

    @property
    def sentence_ids(self) -> range:
        return range(self.first_sentence, self.last_sentence + 1)


@dataclass(frozen=True)
class SplitSettings:
    """How sentences are grouped into passages.

    Four sentences, two apart, put the passage holding the answer first more often on SQuAD v1.1
    than three sentences two apart (.857 against .840 hit@1 per article) or three apart (.820).
    """

    max_sentences: int = 4
    max_words: int = 120
    stride: int = 2
    cross_paragraphs: bool = True
    # How a passage gets its vector: "encoded", the model reads the passage; or "pooled", the mean
    # of its sentences' vectors weighted by their wordpieces, so that a build reads every word once
    # instead of about three times (two overlapping passages and the sentence alone). Pooled
    # builds 2-3 times faster and puts the answering passage first a little less often (SQuAD
    # v1.1 hit@1 per article .846 against .856; docs/design.md).
    vectors: str = "encoded"

    def __post_init__(self) -> None:
        if self.vectors not in PASSAGE_VECTORS:
            raise ValueError(f"vectors is {self.vectors!r}: use one of {', '.join(PASSAGE_VECTORS)}")
        if self.max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        if not 1 <= self.stride <= self.max_sentences:
            raise ValueError("stride must be between 1 and max_sentences")
        if self.max_words < 10:
            raise ValueError("max_words must be at least 10")


def split_paragraphs(text: str) -> list[tuple[int, int]]:
    """Paragraph spans: blank-line separated, or line by line in a file with no blank line."""
    breaks = _BLANK_LINE if _BLANK_LINE.search(text) else _LINE_BREAK
    spans = []
    position = 0
    for match in [*breaks.finditer(text), None]:
        end = match.start() if match else len(text)
        chunk = text[position:end]
        stripped = chunk.strip()
        if stripped:
            start = position + chunk.index(stripped[0])
            spans.append((start, start + len(stripped)))
        if match:
            position = match.end()
    return spans


def split_sentences(
    text: str, start: int = 0, end: int | None = None, max_words: int | None = None
) -> list[tuple[int, int]]:
    """Sentence spans within `text[start:end]`, by pysbd's rules for English; with `max_words`, a
    longer sentence is cut into runs of at most that many words (a transcript, a scraped table or
    a page without full stops is one "sentence" to pysbd, however long)."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for offset, piece in _pysbd_windows(text, start, end):
        closing = _LEADING_CLOSER.match(piece)
        if spans and closing:
            # A closing quote or bracket the splitter put first belongs to the sentence before it.
            spans[-1] = (spans[-1][0], offset + len(closing.group(1)))
            piece = piece[closing.end() :]
            offset += closing.end()
            if not piece:
                continue
        if spans and not any(char.isalnum() for char in piece):
            spans[-1] = (spans[-1][0], offset + len(piece))  # stray punctuation, not a sentence
            continue
        spans.append((offset, offset + len(piece)))
    if max_words is None:
        return spans
    return [window for span in spans for window in _word_windows(text, *span, max_words)]


def split_article(
    article: Article,
    settings: SplitSettings = SplitSettings(),
    count_tokens: Callable[[str], int] | None = None,
) -> tuple[list[Sentence], list[Passage]]:
    """The sentences and passages of one article."""
    sentences: list[Sentence] = []
    for paragraph, (p_start, p_end) in enumerate(split_paragraphs(article.text), start=1):
        for s_start, s_end in split_sentences(article.text, p_start, p_end, settings.max_words):
            for piece_start, piece_end in _fit_to_model(article, s_start, s_end, count_tokens):
                text = article.text[piece_start:piece_end]
                sentences.append(
                    Sentence(article.id, len(sentences), paragraph, piece_start, piece_end, text)
                )
    return sentences, group_passages(article, sentences, settings)


def group_passages(article: Article, sentences: list[Sentence], settings: SplitSettings) -> list[Passage]:
    """Windows of consecutive sentences, `stride` sentences apart, none cut."""
    passages: list[Passage] = []
    first = 0
    while first < len(sentences):
        last = first
        words = _word_count(sentences[first].text)
        while last + 1 < len(sentences) and last - first + 1 < settings.max_sentences:
            following = sentences[last + 1]
            if not settings.cross_paragraphs and following.paragraph != sentences[first].paragraph:
                break
            extra = _word_count(following.text)
            if words + extra > settings.max_words:
                break
            last += 1
            words += extra
        start, end = sentences[first].start, sentences[last].end
        passages.append(
            Passage(
                id=f"{article.id}#{len(passages)}",
                article_id=article.id,
                paragraph=sentences[first].paragraph,
                first_sentence=first,
                last_sentence=last,
                start=start,
                end=end,
                text=article.text[start:end],
            )
        )
        if last == len(sentences) - 1:
            break
        # Never skip a sentence: a short window advances no further than its own end.
        first = min(first + settings.stride, last + 1)
    return passages


def _fit_to_model(
    article: Article, start: int, end: int, count_tokens: Callable[[str], int] | None
) -> list[tuple[int, int]]:
    """Split a sentence the model would truncate into word runs that fit, and say so."""
    if count_tokens is None or count_tokens(article.text[start:end]) <= MAX_SENTENCE_TOKENS:
        return [(start, end)]
    words = [(m.start() + start, m.end() + start) for m in _WORD.finditer(article.text[start:end])]
    pieces: list[tuple[int, int]] = []
    run_start = 0
    while run_start < len(words):
        run_end = run_start + 1
        while run_end < len(words):
            candidate = article.text[words[run_start][0] : words[run_end][1]]
            if count_tokens(candidate) > MAX_SENTENCE_TOKENS:
                break
            run_end += 1
        pieces.append((words[run_start][0], words[run_end - 1][1]))
        run_start = run_end
    log.debug(
        "%s: a sentence of %d characters at offset %d exceeds the model's %d wordpieces; "
        "split into %d pieces",
        article.id,
        end - start,
        start,
        MAX_SENTENCE_TOKENS,
        len(pieces),
    )
    return pieces


def _word_windows(text: str, start: int, end: int, max_words: int) -> list[tuple[int, int]]:
    """`text[start:end]` as is, or, when it is over `max_words` words, cut into as few runs of
    words as keep to that, of even length (130 words are two of 65, not 120 and 10)."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]
    if len(words) <= max_words:
        return [(start, end)]
    runs = -(-len(words) // max_words)
    bounds = [len(words) * k // runs for k in range(runs + 1)]
    return [(words[first][0], words[last - 1][1]) for first, last in itertools.pairwise(bounds)]


def _word_count(text: str) -> int:
    return len(_WORD.findall(text))


def _pysbd_windows(text: str, start: int, end: int) -> list[tuple[int, str]]:
    """pysbd's sentences of `text[start:end]`, stripped, with where each starts in `text`, found
    PYSBD_WINDOW_WORDS words at a time.

    pysbd's time grows with the square of the text it is given, punctuated or not: its
    abbreviation pass rewrites the whole text once for every word that begins like an
    abbreviation ("on", "no", "st"), and a paragraph of 16 KB took 0.29 s, 32 KB 0.97 s, 250 KB
    of words without a full stop 71 s. So it reads a window of words at a time; every sentence
    but the window's last is kept (its end was seen with text after it), and the next window
    starts where that last one did. A window pysbd finds no sentence end in is kept whole, and
    `max_words` cuts it later. A paragraph within one window is read exactly as before."""
    word_ends = [m.end() for m in _WORD.finditer(text, start, end)]
    sentences: list[tuple[int, str]] = []
    at, first_word = start, 0
    while first_word < len(word_ends):
        last_window = len(word_ends) - first_word <= PYSBD_WINDOW_WORDS
        stop = end if last_window else word_ends[first_word + PYSBD_WINDOW_WORDS - 1]
        found = [
            (at + offset + sentence.index(piece[0]), piece)
            for offset, sentence in _pysbd_spans(text[at:stop])
            if (piece := sentence.strip())
        ]
        if last_window or len(found) < 2:
            sentences += found
            at = stop
        else:
            sentences += found[:-1]
            at = found[-1][0]
        first_word = bisect.bisect_right(word_ends, at)
    return sentences


def _pysbd_spans(text: str) -> list[tuple[int, str]]:
    """pysbd's sentences of `text` with where each starts.

    pysbd's own `char_span=True` finds each sentence again with a regular expression made of its
    text: one compiled pattern per sentence, which also flushes the `re` cache that pysbd's rules
    rely on. That was two thirds of splitting time. Its sentences are the text's own characters in
    order, so `str.find` from the end of the previous one places them; should one not be found,
    pysbd places them itself."""
    segmenter = _segmenter()
    spans = []
    at = 0
    for sentence in segmenter.processor(text).process():
        found = text.find(sentence, at)
        if found < 0:
            return [(span.start, span.sent) for span in segmenter.segment(text)]
        spans.append((found, sentence))
        at = found + len(sentence)
    return spans


@lru_cache(maxsize=1)
def _segmenter() -> Any:
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)
