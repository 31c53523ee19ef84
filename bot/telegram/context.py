"""What the buttons show, looked up in the index from passage ids alone (so they survive restarts)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.telegram.html import quote, source_line

if TYPE_CHECKING:
    from index.store import SearchIndex

OTHER_PASSAGES_HEADING = "Other passages"


def context_html(index: SearchIndex, passage_id: str, sentence_offset: int | None) -> str | None:
    """The passage's paragraphs and one paragraph either side, the answer sentence marked.

    None when the passage is no longer in the index (the articles changed since the button was sent).
    """
    passage = index.passage(passage_id)
    if passage is None:
        return None
    article = index.articles[passage.article_id]
    sentences = index.sentences_of(passage)
    around = index.surrounding(passage, paragraphs=1)
    start, end, first, last = around.start, around.end, around.first_paragraph, around.last_paragraph
    text = article.text[start:end]
    pieces = []
    highlight = None
    if sentence_offset is not None and 0 <= sentence_offset < len(sentences):
        answer = sentences[sentence_offset]
        highlight = (answer.start - start, answer.end - start)
        pieces.append(f"<b>{html.escape(answer.text)}</b>")
    pieces.append(f"{quote(text, highlight)}\n{source_line(article.title, article.date, first, last)}")
    return "\n\n".join(pieces)


def passages_html(index: SearchIndex, passage_ids: Sequence[str]) -> str | None:
    """Further passages, each quoted with its source line; None when none of them still exists."""
    quoted = []
    for passage_id in passage_ids:
        passage = index.passage(passage_id)
        if passage is None:
            continue
        article = index.articles[passage.article_id]
        quoted.append(f"{quote(passage.text)}\n{source_line(article.title, article.date, passage.paragraph)}")
    if not quoted:
        return None
    return "\n\n".join([f"<b>{OTHER_PASSAGES_HEADING}</b>", *quoted])
