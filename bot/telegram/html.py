"""Answers as Telegram HTML, and long replies split into messages Telegram accepts.

Telegram's HTML is small: a fixed set of tags, which must balance, and the entities
`&lt; &gt; &amp; &quot;` plus numeric ones. Every piece of article or user text goes through
`html.escape`, so nothing a reader types can become markup.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.answer import OVERVIEW, Answer, AnswerSentence, QuotedPassage
from bot.render import IN_FOCUS, OVERVIEW_HEADING, where_in_article

# Telegram counts a message's length after entity parsing, in UTF-16 code units.
MAX_MESSAGE_LENGTH = 4096
NO_ANSWER = "I couldn't find that in the article."


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def source_line(title: str, date: str | None, paragraph: int, last_paragraph: int | None = None) -> str:
    """'title · date · paragraph N' (or 'paragraphs N–M'), escaped and in italics."""
    return f"<i>{html.escape(where_in_article(title, date, paragraph, last_paragraph=last_paragraph))}</i>"


def quote(text: str, highlight: tuple[int, int] | None = None) -> str:
    """A passage in a blockquote; the highlighted span (answer sentence) in bold."""
    if highlight is None:
        return f"<blockquote>{html.escape(text)}</blockquote>"
    start, end = highlight
    return (
        f"<blockquote>{html.escape(text[:start])}<b>{html.escape(text[start:end])}</b>"
        f"{html.escape(text[end:])}</blockquote>"
    )


def format_answer(answer: Answer, articles: int = 1) -> str:
    """The reply to a question: answer sentence, quoted passage, source line (saying so when the
    answer was sought in its article alone, among several `articles`); or the closest match. A
    follow-up says how it was read, under the answer."""
    if not answer.passages:
        return html.escape(NO_ANSWER)
    leader = answer.passages[0]
    read_as = f"\n<i>{html.escape(f'(read as: {answer.read_as})')}</i>" if answer.read_as else ""
    if answer.kind == OVERVIEW:
        listed = [
            f"{quote(p.text, p.highlight)}\n{source_line(p.title, p.date, p.paragraph)}"
            for p in answer.passages
        ]
        return "\n\n".join([html.escape(OVERVIEW_HEADING.format(count=len(answer.passages))), *listed])
    if answer.answered and answer.sentence is not None:
        source = source_line(leader.title, leader.date, answer.sentence.sentence.paragraph)
        if articles > 1 and answer.focus == leader.passage.article_id:
            source = source.replace("</i>", f" · {IN_FOCUS}</i>")
        return f"{answer_html(answer.sentence)}\n\n{quote(leader.text, leader.highlight)}\n{source}{read_as}"
    return "\n\n".join([html.escape(NO_ANSWER), "Closest match:\n" + format_passage(leader) + read_as])


def answer_html(sentence: AnswerSentence) -> str:
    """The answer sentence, its short answer in bold (the whole sentence when there is none)."""
    if sentence.short_span is None:
        return f"<b>{html.escape(sentence.text)}</b>"
    start, end = sentence.short_span
    text = sentence.text
    return f"{html.escape(text[:start])}<b>{html.escape(text[start:end])}</b>{html.escape(text[end:])}"


def format_passage(passage: QuotedPassage) -> str:
    source = source_line(passage.title, passage.date, passage.paragraph)
    return f"{quote(passage.text, passage.highlight)}\n{source}"


def format_passages(heading: str, passages: Iterable[QuotedPassage]) -> str:
    """Several quoted passages under a bold heading, each with its source line."""
    return "\n\n".join([f"<b>{html.escape(heading)}</b>", *(format_passage(p) for p in passages)])


def plain_text(telegram_html: str) -> str:
    """What a reader sees: the text with tags dropped and entities resolved."""
    return "".join(piece.text for piece in _pieces(telegram_html))


# Splitting -------------------------------------------------------------------------------------

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^<>]*)>")
# Where a part may end, best first: after a blank line, a line break, a sentence, a word.
_BOUNDARIES = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(r"[.!?…][\"'”’)\]]*\s+"),
    re.compile(r"\s+"),
)


@dataclass(frozen=True)
class _Piece:
    """A run of visible text and the elements open around it, outermost first."""

    text: str
    open_tags: tuple[tuple[int, str, str], ...]  # (element number, tag name, opening tag)


def _pieces(telegram_html: str) -> list[_Piece]:
    pieces: list[_Piece] = []
    stack: list[tuple[int, str, str]] = []
    position = 0
    elements = 0
    for match in _TAG.finditer(telegram_html):
        if match.start() > position:
            pieces.append(_Piece(html.unescape(telegram_html[position : match.start()]), tuple(stack)))
        closing, name = match.group(1), match.group(2).lower()
        if closing:
            if not stack or stack[-1][1] != name:
                raise ValueError(f"unbalanced </{name}> at {match.start()}")
            stack.pop()
        else:
            elements += 1
            stack.append((elements, name, match.group(0)))
        position = match.end()
    if position < len(telegram_html):
        pieces.append(_Piece(html.unescape(telegram_html[position:]), tuple(stack)))
    if stack:
        raise ValueError(f"<{stack[-1][1]}> is never closed")
    return pieces


def _render(pieces: Sequence[_Piece]) -> str:
    """Telegram HTML for pieces: tags opened and closed where the nesting changes, all balanced."""
    out: list[str] = []
    stack: tuple[tuple[int, str, str], ...] = ()
    for piece in pieces:
        common = 0
        while common < min(len(stack), len(piece.open_tags)) and stack[common] == piece.open_tags[common]:
            common += 1
        out.extend(f"</{name}>" for _, name, _ in reversed(stack[common:]))
        out.extend(tag for _, _, tag in piece.open_tags[common:])
        out.append(html.escape(piece.text, quote=False))
        stack = piece.open_tags
    out.extend(f"</{name}>" for _, name, _ in reversed(stack))
    return "".join(out)


def split_message(telegram_html: str, limit: int = MAX_MESSAGE_LENGTH) -> list[str]:
    """Split valid Telegram HTML into messages of at most `limit` visible characters each.

    Cuts fall after a paragraph if one ends late enough, else after a sentence, else between
    words; tags open across a cut are closed at the end of one part and reopened in the next,
    and entities are never cut because the text is split before it is escaped again.
    """
    pieces = _pieces(telegram_html)
    text = "".join(piece.text for piece in pieces)
    if utf16_length(text.strip()) <= limit:
        return [telegram_html.strip()]
    # The character each piece starts at, to cut pieces at positions in `text`.
    starts = []
    at = 0
    for piece in pieces:
        starts.append(at)
        at += len(piece.text)
    parts = []
    for start, end in _cuts(text, limit):
        selected = []
        for piece, piece_start in zip(pieces, starts, strict=True):
            lo, hi = max(start, piece_start), min(end, piece_start + len(piece.text))
            if lo < hi:
                selected.append(_Piece(piece.text[lo - piece_start : hi - piece_start], piece.open_tags))
        _strip_edges(selected)
        rendered = _render([p for p in selected if p.text])
        if plain_text(rendered).strip():
            parts.append(rendered)
    return parts


def _cuts(text: str, limit: int) -> list[tuple[int, int]]:
    spans = []
    start = 0
    while start < len(text):
        end = _fit(text, start, limit)
        if end < len(text):
            window = text[start:end]
            for boundary in _BOUNDARIES:
                # Prefer a good boundary only if it keeps the part at least a quarter full.
                found = [m.end() for m in boundary.finditer(window) if m.end() > len(window) // 4]
                if found:
                    end = start + found[-1]
                    break
        spans.append((start, end))
        start = end
    return spans


def _fit(text: str, start: int, limit: int) -> int:
    """The furthest end such that text[start:end] is at most `limit` UTF-16 units."""
    units = 0
    end = start
    while end < len(text):
        size = 2 if ord(text[end]) > 0xFFFF else 1
        if units + size > limit:
            break
        units += size
        end += 1
    return end


def _strip_edges(pieces: list[_Piece]) -> None:
    """Telegram trims a message's outer white space; do it first so lengths stay honest."""
    while pieces and not pieces[0].text.strip():
        pieces.pop(0)
    while pieces and not pieces[-1].text.strip():
        pieces.pop()
    if pieces:
        pieces[0] = _Piece(pieces[0].text.lstrip(), pieces[0].open_tags)
        pieces[-1] = _Piece(pieces[-1].text.rstrip(), pieces[-1].open_tags)
