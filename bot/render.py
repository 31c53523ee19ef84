"""An Answer as a person reads it in a terminal, and as the `--json` object."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.text import Text

from bot.answer import OVERVIEW, Answer, QuotedPassage

NO_ANSWER = "The article does not seem to answer that."
NOTHING_INDEXED = "There is nothing indexed to answer from."
# Said on a source line when the answer was sought in that article alone (the one in focus).
IN_FOCUS = "in focus"
OVERVIEW_HEADING = "{count} articles, newest first; each opens:"
HIGHLIGHT_STYLE = "bold yellow"
SHORT_STYLE = "bold green"
WIDTH = 92
TITLE_CHARS = 48


def where_in_article(
    title: str,
    date: str | None,
    paragraph: int,
    *,
    last_paragraph: int | None = None,
    paragraph_count: int | None = None,
) -> str:
    """Where a passage stands, as every front end says it: 'title · date · paragraph N of M'
    (or 'paragraphs N–M')."""
    where = f"paragraph {paragraph}"
    if last_paragraph is not None and last_paragraph != paragraph:
        where = f"paragraphs {paragraph}–{last_paragraph}"
    if paragraph_count:
        where += f" of {paragraph_count}"
    return " · ".join([title, *([date] if date else []), where])


def source_line(quoted: QuotedPassage, paragraph: int | None = None, *, in_focus: bool = False) -> str:
    """Where a passage (or the sentence in it) stands, its title shortened for a terminal line;
    `in_focus`: the answer was sought in this article alone."""
    where = where_in_article(
        shorten(quoted.title, TITLE_CHARS),
        quoted.date,
        paragraph or quoted.paragraph,
        paragraph_count=quoted.paragraph_count,
    )
    return f"{where} · {IN_FOCUS}" if in_focus else where


def render_rich(answer: Answer, *, marks: bool = False, width: int = WIDTH, articles: int = 1) -> Group:
    """Answer sentence, the quoted passage with that sentence highlighted, and its source.

    With `marks`, the highlight is also drawn as » « so that it survives without colour. With
    several `articles`, a source line says when the answer was sought in its article alone.
    """
    if not answer.passages:
        return Group(Text(NOTHING_INDEXED))
    best, *others = answer.passages
    parts: list[Text] = []
    if answer.read_as:
        parts.append(Text(f"(read as: {answer.read_as})", style="dim italic"))
    in_focus = articles > 1 and answer.focus is not None and best.passage.article_id == answer.focus
    if answer.kind == OVERVIEW:
        parts.append(Text(OVERVIEW_HEADING.format(count=len(answer.passages)), style="dim"))
        parts += [quote(quoted, marks=marks, width=width) for quoted in answer.passages]
    elif answer.answered and answer.sentence is not None:
        paragraph = answer.sentence.sentence.paragraph
        parts += [
            answer_line(answer, marks=marks),
            Text(),
            quote(best, marks=marks, paragraph=paragraph, width=width, in_focus=in_focus),
        ]
        if others:
            parts.append(Text("Also in the article:", style="dim"))
            parts += [quote(quoted, marks=marks, width=width) for quoted in others]
    else:
        parts += [Text(NO_ANSWER, style="bold"), Text("Closest match (not an answer):", style="dim")]
        parts.append(quote(best, marks=marks, width=width))
    return Group(*parts)


def answer_line(answer: Answer, *, marks: bool = False) -> Text:
    """The answer sentence in bold, the short answer in it coloured (or between ** without colour)."""
    assert answer.sentence is not None
    text = Text(style="bold")
    sentence, span = answer.sentence, answer.sentence.short_span
    if span is None:
        return text.append(sentence.text)
    start, end = span
    text.append(sentence.text[:start])
    short = sentence.text[start:end]
    text.append(f"**{short}**" if marks else short, style=SHORT_STYLE)
    return text.append(sentence.text[end:])


def render_text(answer: Answer, articles: int = 1) -> str:
    """`render_rich` as plain text, the answer sentence marked with » «."""
    console = Console(width=WIDTH, no_color=True, highlight=False, force_terminal=False)
    with console.capture() as capture:
        console.print(render_rich(answer, marks=True, articles=articles))
    return capture.get().rstrip()


def quote(
    quoted: QuotedPassage,
    *,
    marks: bool = False,
    paragraph: int | None = None,
    width: int = WIDTH,
    in_focus: bool = False,
) -> Text:
    """A passage behind a bar, its highlight styled, and its source line under it."""
    text = Text()
    if quoted.highlight is None:
        text.append(quoted.text)
    else:
        start, end = quoted.highlight
        text.append(quoted.text[:start])
        text.append("»" if marks else "", style=HIGHLIGHT_STYLE)
        if quoted.short is None:
            text.append(quoted.text[start:end], style=HIGHLIGHT_STYLE)
        else:
            short_start, short_end = quoted.short
            text.append(quoted.text[start:short_start], style=HIGHLIGHT_STYLE)
            text.append(quoted.text[short_start:short_end], style=SHORT_STYLE)
            text.append(quoted.text[short_end:end], style=HIGHLIGHT_STYLE)
        text.append("«" if marks else "", style=HIGHLIGHT_STYLE)
        text.append(quoted.text[end:])
    lines = text.wrap(Console(width=width), width - 2)
    body = Text()
    for line in lines:
        line.rstrip()
        body.append("│ " if line.plain else "│", style="dim")
        body.append(line)
        body.append("\n")
    body.append(f"— {source_line(quoted, paragraph, in_focus=in_focus)}\n", style="italic dim")
    return body


def shorten(text: str, limit: int) -> str:
    """`text` on one line in at most `limit` characters, cut at a word with an ellipsis."""
    text = " ".join(text.split()).rstrip("…")
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def answer_to_json(answer: Answer) -> dict[str, Any]:
    """The `ask --json` object, exactly as documented in docs/usage.md."""
    sentence = answer.sentence
    return {
        "question": answer.question,
        "read_as": answer.read_as,
        "kind": answer.kind,
        "focus": answer.focus,
        "answered": answer.answered,
        # The figure `answered` is decided on: with the reader, its probability that the chosen
        # passage answers (answered at config `answer.abstain_threshold` or above).
        "confidence": round(answer.confidence, 6),
        "answer": None
        if sentence is None
        else {
            "sentence": sentence.text,
            "short": None
            if sentence.short is None
            else {"text": sentence.short.text, "start": sentence.short.start, "end": sentence.short.end},
            "article": sentence.sentence.article_id,
            "title": sentence.title,
            "date": sentence.date,
            "paragraph": sentence.sentence.paragraph,
        },
        "passages": [
            {
                "text": quoted.text,
                "score": round(quoted.score, 6),
                "article": quoted.passage.article_id,
                "title": quoted.title,
                "date": quoted.date,
                "paragraph": quoted.paragraph,
                "start": quoted.passage.start,
                "end": quoted.passage.end,
            }
            for quoted in answer.passages
        ],
        "timings_ms": dict(answer.timings_ms),
    }
