"""Inline keyboards whose `callback_data` names passages, so a button works after a restart.

A passage id ("armenia-2021-03-01#4") can be long, since article ids come from file names;
`callback_data` must stay under 64 bytes. Each passage is therefore named by a short,
deterministic reference: 8 URL-safe characters of a hash of its id. The bot rebuilds the
reference table from the index when it starts, so no button depends on memory of a chat.

    ctx:<ref>:<k>          "More context" around a passage; k = answer sentence within it, or "-"
    oth:<ref>.<ref>...     "Other passages": the further hits of the answer, best first
    use:<ref>              /sources: ask about this article alone (its id's reference)
    use:*                  /sources: ask about every article again
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from telegram import InlineKeyboardMarkup

    from bot.answer import Answer

MAX_CALLBACK_BYTES = 64
MAX_OTHER_PASSAGES = 5
MORE_CONTEXT = "More context"
OTHER_PASSAGES = "Other passages"


def passage_ref(passage_id: str) -> str:
    """Eight characters that name a passage, the same in every process."""
    digest = hashlib.blake2b(passage_id.encode("utf-8"), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


class PassageRefs:
    """Reference → passage id for every passage of the index."""

    def __init__(self, passage_ids: Iterable[str]) -> None:
        self._ids = {passage_ref(passage_id): passage_id for passage_id in passage_ids}

    def resolve(self, ref: str) -> str | None:
        return self._ids.get(ref)


@dataclass(frozen=True)
class ContextRequest:
    passage_ref: str
    sentence_offset: int | None  # the answer sentence's position within the passage


@dataclass(frozen=True)
class OtherPassagesRequest:
    passage_refs: tuple[str, ...]


@dataclass(frozen=True)
class FocusRequest:
    article_ref: str | None  # None: every article


ALL_ARTICLES = "All articles"
# /sources offers a focus button for at most this many articles (Telegram allows 100 buttons).
MAX_FOCUS_BUTTONS = 20


_OFFSET = re.compile(r"[0-9]{1,4}")


def context_data(passage_id: str, sentence_offset: int | None) -> str:
    return f"ctx:{passage_ref(passage_id)}:{'-' if sentence_offset is None else sentence_offset}"


def other_passages_data(passage_ids: Sequence[str]) -> str:
    return "oth:" + ".".join(passage_ref(p) for p in passage_ids[:MAX_OTHER_PASSAGES])


def article_ref(article_id: str) -> str:
    """Eight characters that name an article (as `passage_ref` names a passage)."""
    return passage_ref(article_id)


def focus_data(article_id: str | None) -> str:
    return "use:*" if article_id is None else f"use:{article_ref(article_id)}"


def parse_callback_data(data: str | None) -> ContextRequest | OtherPassagesRequest | FocusRequest | None:
    """The request a button carries, or None for data this bot did not write."""
    if not data:
        return None
    kind, _, rest = data.partition(":")
    if kind == "ctx":
        ref, _, offset = rest.partition(":")
        if not ref:
            return None
        if offset == "-":
            return ContextRequest(ref, None)
        # ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() then refuses.
        return ContextRequest(ref, int(offset)) if _OFFSET.fullmatch(offset) else None
    if kind == "oth":
        refs = tuple(ref for ref in rest.split(".") if ref)
        return OtherPassagesRequest(refs) if refs else None
    if kind == "use" and rest:
        return FocusRequest(None if rest == "*" else rest)
    return None


def focus_keyboard(articles: Sequence[tuple[str, str]]) -> InlineKeyboardMarkup | None:
    """/sources' buttons: one per article (`(id, label)`, the first `MAX_FOCUS_BUTTONS`) to ask
    about it alone, and one for every article again; None with one article."""
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup

    if len(articles) < 2:
        return None
    rows = [
        [InlineKeyboardButton(label, callback_data=focus_data(article_id))]
        for article_id, label in articles[:MAX_FOCUS_BUTTONS]
    ]
    rows.append([InlineKeyboardButton(ALL_ARTICLES, callback_data=focus_data(None))])
    return InlineKeyboardMarkup(rows)


def answer_keyboard(answer: Answer, *, more_context: bool = True) -> InlineKeyboardMarkup | None:
    """The buttons under an answer: 'More context' and, when there are further hits, 'Other passages'."""
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup

    if not answer.passages:
        return None
    leader = answer.passages[0]
    buttons = []
    if more_context:
        offset = None
        if answer.answered and answer.sentence is not None:
            offset = answer.sentence.sentence.index - leader.passage.first_sentence
        data = context_data(leader.passage.id, offset)
        buttons.append(InlineKeyboardButton(MORE_CONTEXT, callback_data=data))
    others = [p.passage.id for p in answer.passages[1:]]
    if others:
        buttons.append(InlineKeyboardButton(OTHER_PASSAGES, callback_data=other_passages_data(others)))
    return InlineKeyboardMarkup([buttons]) if buttons else None


def without_button(markup: InlineKeyboardMarkup | None, label: str) -> InlineKeyboardMarkup | None:
    """The same keyboard minus the buttons labelled `label`; None when nothing is left."""
    from telegram import InlineKeyboardMarkup

    if markup is None:
        return None
    rows = [[b for b in row if b.text != label] for row in markup.inline_keyboard]
    rows = [row for row in rows if row]
    return InlineKeyboardMarkup(rows) if rows else None
