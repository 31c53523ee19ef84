"""Splitting: passages never cut a sentence, and every offset points at the exact text."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import Config
from bot.engine import AnswerEngine
from index.articles import Article, parse_article
from index.embed import SentenceTransformerEmbedder
from index.split import (
    PYSBD_WINDOW_WORDS,
    SplitSettings,
    _pysbd_spans,
    group_passages,
    split_article,
    split_paragraphs,
    split_sentences,
)

NEWS = (
    "WASHINGTON -- The U.S. Senate voted 52-48 on Tuesday. "
    'Mr. Smith, who chairs the panel, said "We are done." '
    "J. R. R. Tolkien was not consulted. The bill costs $1.5 billion, officials said.\n\n"
    "Dr. Ahmed told reporters: “It is a humiliating loss.” Gov. Brown disagreed.\n\n"
    'The letter said it "will no longer be able to decide for the Armenian people."'
)


def _article(text: str) -> Article:
    return parse_article(text, path="t.txt", article_id="t")


def _sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


def test_abbreviations_initials_and_quotes_do_not_break_sentences() -> None:
    article = _article(NEWS)
    sentences, _ = split_article(article)
    assert [s.text for s in sentences] == [
        "The U.S. Senate voted 52-48 on Tuesday.",
        'Mr. Smith, who chairs the panel, said "We are done."',
        "J. R. R. Tolkien was not consulted.",
        "The bill costs $1.5 billion, officials said.",
        "Dr. Ahmed told reporters: “It is a humiliating loss.”",
        "Gov. Brown disagreed.",
        'The letter said it "will no longer be able to decide for the Armenian people."',
    ]
    assert [s.paragraph for s in sentences] == [1, 1, 1, 1, 2, 2, 3]


def test_a_stray_closing_quote_stays_with_its_sentence() -> None:
    text = 'They said it “will no longer act for the people." Then they left.'
    assert _sentences(text) == ['They said it “will no longer act for the people."', "Then they left."]


def test_paragraphs_by_blank_lines_or_by_lines() -> None:
    assert split_paragraphs("One.\n\n  Two.\n \nThree.") == [(0, 4), (8, 12), (15, 21)]
    assert split_paragraphs("One.\nTwo.") == [(0, 4), (5, 9)]


def test_passages_hold_whole_consecutive_sentences_and_cover_all() -> None:
    article = _article(NEWS)
    sentences, passages = split_article(article, SplitSettings(max_sentences=3, stride=2))
    covered: set[int] = set()
    for passage in passages:
        assert article.text[passage.start : passage.end] == passage.text
        members = [sentences[i] for i in passage.sentence_ids]
        assert passage.start == members[0].start and passage.end == members[-1].end
        assert passage.paragraph == members[0].paragraph
        covered.update(passage.sentence_ids)
    assert covered == set(range(len(sentences)))
    assert [p.id for p in passages] == [f"t#{i}" for i in range(len(passages))]


def test_passages_can_stay_within_paragraphs() -> None:
    article = _article(NEWS)
    sentences, passages = split_article(article, SplitSettings(cross_paragraphs=False))
    for passage in passages:
        assert len({sentences[i].paragraph for i in passage.sentence_ids}) == 1


def test_word_limit_keeps_passages_short_but_never_empty() -> None:
    article = _article(NEWS)
    _, passages = split_article(article, SplitSettings(max_sentences=5, max_words=12, stride=1))
    assert all(len(p.text.split()) <= 12 or p.first_sentence == p.last_sentence for p in passages)


def test_bad_split_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="stride"):
        SplitSettings(max_sentences=2, stride=3)
    with pytest.raises(ValueError, match="max_sentences"):
        SplitSettings(max_sentences=0)


def test_a_sentence_over_the_models_wordpieces_is_split_and_logged_for_debugging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = " ".join(f"word{i}" for i in range(600)) + "."
    article = _article(text)
    with caplog.at_level(logging.DEBUG, logger="index.split"):
        sentences, _ = split_article(
            article, SplitSettings(max_words=1000), count_tokens=lambda piece: len(piece.split())
        )
    assert len(sentences) == 3
    assert all(len(s.text.split()) <= 250 for s in sentences)
    assert " ".join(s.text for s in sentences) == text
    assert "exceeds the model's 250 wordpieces" in caplog.text
    assert all(record.levelno == logging.DEBUG for record in caplog.records)


FILLER = ["the", "harbour", "ferry", "market", "bridge", "library", "on", "no", "st", "orchard",
         "railway", "quarry", "said", "monday"]  # fmt: skip
LAST_SENTENCE = "The lighthouse keeper Marguerite Okonkwo-Blanc was dismissed by the port council."


def _without_full_stops(characters: int) -> str:
    """Words and no sentence end for `characters`, as a transcript or a scraped table is, then
    one sentence."""
    rng = random.Random(characters)
    words = [rng.choice(FILLER) for _ in range(characters // 6)]
    return " ".join(words) + " " + LAST_SENTENCE


def test_text_without_sentence_ends_keeps_passages_within_max_words() -> None:
    """A megabyte of words without a full stop was one passage of 150,000 words, and took
    quadratic time to split (250 KB: 71 s; scripts/bench.py's split rows time it now)."""
    text = _without_full_stops(1_000_000)
    article = Article(id="run", path="run.txt", title="run", text=text)
    sentences, passages = split_article(article)
    assert len(passages) > 1_000
    assert all(len(p.text.split()) <= 120 for p in passages)
    assert all(text[s.start : s.end] == s.text for s in sentences)
    assert " ".join(s.text for s in sentences) == " ".join(text.split())
    assert passages[-1].text.endswith(LAST_SENTENCE)


def test_a_sentence_over_max_words_is_cut_into_even_runs() -> None:
    text = " ".join(f"w{i}" for i in range(130)) + ". Short one."
    spans = split_sentences(text, max_words=120)
    assert [len(text[a:b].split()) for a, b in spans] == [65, 65, 2]
    assert split_sentences(text) == [(0, text.index(" Short")), (text.index("Short"), len(text))]


def test_a_paragraph_longer_than_pysbds_window_splits_as_if_read_whole() -> None:
    paragraph = " ".join([NEWS.replace("\n\n", " ")] * 40)
    assert len(paragraph.split()) > 3 * PYSBD_WINDOW_WORDS
    whole = [(start, sentence.strip()) for start, sentence in _pysbd_spans(paragraph)]
    assert [(a, paragraph[a:b]) for a, b in split_sentences(paragraph)] == whole


@pytest.mark.slow
def test_the_last_sentence_of_text_without_full_stops_is_found(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """20 KB of words without a full stop used to be one passage, its vector made of the first
    256 wordpieces, so nothing near the end could be found."""
    (tmp_path / "transcript.txt").write_text(_without_full_stops(20_000), encoding="utf-8")
    config = Config(articles=(tmp_path / "transcript.txt",), index_dir=tmp_path / "index")
    engine = AnswerEngine(config, embedder=embedder, status=lambda message: None)
    answer = engine.ask("Who was dismissed by the port council?")
    assert answer.passages[0].text.endswith(LAST_SENTENCE)
    assert answer.answered and answer.sentence is not None
    assert "Okonkwo-Blanc" in answer.sentence.text


_word = st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzÄé’"), min_size=1, max_size=9)
_sentence = st.builds(
    lambda words, end, cap: cap + " ".join(words) + end,
    st.lists(_word, min_size=1, max_size=12),
    st.sampled_from([".", "!", "?", '."', ".”", ""]),
    st.sampled_from(["A ", "Mr. ", "The U.S. ", "“", ""]),
)
_paragraph = st.lists(_sentence, min_size=1, max_size=5).map(" ".join)
_text = st.lists(_paragraph, min_size=1, max_size=5).map(lambda ps: "\n\n".join(ps))


@settings(max_examples=60, deadline=None)
@given(_text, st.integers(1, 4), st.integers(20, 80))
def test_property_offsets_are_exact_and_no_sentence_is_cut(text: str, size: int, words: int) -> None:
    if not text.strip():
        return
    article = Article(id="p", path="p.txt", title="p", text=text)
    stride = max(1, size - 1)
    sentences, passages = split_article(
        article, SplitSettings(max_sentences=size, max_words=words, stride=stride)
    )
    starts, ends = {s.start for s in sentences}, {s.end for s in sentences}
    for sentence in sentences:
        assert text[sentence.start : sentence.end] == sentence.text
        assert sentence.text == sentence.text.strip() and sentence.text
    # Sentences are in order, do not overlap, and leave out nothing but white space.
    position = 0
    for sentence in sentences:
        assert text[position : sentence.start].strip() == ""
        position = sentence.end
    assert text[position:].strip() == ""
    for passage in passages:
        assert text[passage.start : passage.end] == passage.text
        assert passage.start in starts and passage.end in ends
    assert {i for p in passages for i in p.sentence_ids} == set(range(len(sentences)))
    assert (
        group_passages(article, sentences, SplitSettings(max_sentences=size, max_words=words, stride=stride))
        == passages
    )


_ODD = ["He said... then left. Fine.", "1. First. 2. Second item.", "Go!! Now?! (Yes.) OK", "a  b.\n\n c. "]


@settings(max_examples=80, deadline=None)
@given(_text | st.sampled_from(_ODD))
def test_sentences_stand_where_pysbd_itself_places_them(text: str) -> None:
    """Splitting places pysbd's sentences with str.find rather than pysbd's char_span, which
    compiles a regular expression per sentence (the slow part): the spans must be pysbd's own."""
    import pysbd

    from index.split import _pysbd_spans

    own = pysbd.Segmenter(language="en", clean=False, char_span=True).segment(text)
    placed = [(start, sentence.strip()) for start, sentence in _pysbd_spans(text)]
    assert placed == [(span.start, span.sent.strip()) for span in own]  # theirs hold trailing space
