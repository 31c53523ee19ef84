"""A conversation: the turns so far, the article in focus, and a bounded store of conversations.

Nothing here is written to disk. A conversation is an immutable value, so a Telegram reply to an
older answer can continue from that answer (a fork) without disturbing anyone else's.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from bot.answer import Given

if TYPE_CHECKING:
    from bot.answer import Answer


@dataclass(frozen=True)
class ConversationSettings:
    """The `[conversation]` section: how much of each conversation is held, and for how long."""

    # Turns a follow-up may lean on (only the last is read today; the rest keep "what else?"
    # chains and focus changes honest).
    max_turns: int = 4
    # A conversation idle this long is forgotten: the next question starts afresh.
    idle_minutes: float = 30.0
    # At most this many are held (the least recently used go first): ~2 KB each.
    max_conversations: int = 10_000

    def __post_init__(self) -> None:
        if not 1 <= self.max_turns <= 50:
            raise ValueError(f"max_turns is {self.max_turns}: use 1 to 50")
        if not 0 < self.idle_minutes <= 7 * 24 * 60:
            raise ValueError(f"idle_minutes is {self.idle_minutes:g}: use more than 0, up to 10080 (a week)")
        if not 1 <= self.max_conversations <= 10_000_000:
            raise ValueError(f"max_conversations is {self.max_conversations}: use 1 to 10000000")


@dataclass(frozen=True, slots=True)
class Turn:
    """One question and what the bot answered, as far as a follow-up may lean on it."""

    # The question as it was read (a follow-up's resolved form); None when only the answer is
    # known (a Telegram answer sent before the bot restarted).
    question: str | None
    answered: bool
    article_id: str | None = None  # the answer's article, or None when it was refused
    passage_id: str | None = None
    sentence: int | None = None  # the answer sentence's number within its article
    sentence_text: str | None = None
    short: str | None = None  # the short answer within it
    # What was already given to this question, in its article ("what else?" leaves it out).
    given_sentences: tuple[int, ...] = ()
    given_answers: tuple[str, ...] = ()

    @classmethod
    def of(cls, answer: Answer, question: str | None = None, before: Turn | None = None) -> Turn:
        """The turn an answer makes to `question` (as read; by default as asked); `before`: the
        turn that asked the same question ("what else?"), whose answers this one adds to."""
        question = question or answer.question
        sentence = answer.sentence
        if not answer.answered or sentence is None or not answer.passages:
            return cls(question, False)
        short = sentence.short.text.strip(" .,;:") if sentence.short is not None else None
        article_id = sentence.sentence.article_id
        sentences: tuple[int, ...] = ()
        answers: tuple[str, ...] = ()
        if before is not None and before.article_id == article_id:
            sentences, answers = before.given_sentences, before.given_answers
        return cls(
            question,
            True,
            article_id,
            answer.passages[0].passage.id,
            sentence.sentence.index,
            sentence.text,
            short or None,
            (*sentences, sentence.sentence.index),
            (*answers, short) if short else answers,
        )

    def given(self) -> Given:
        """What was answered to this turn's question so far."""
        if self.article_id is None:
            return Given()
        return Given(frozenset((self.article_id, n) for n in self.given_sentences), self.given_answers)


@dataclass(frozen=True, slots=True)
class Conversation:
    """The turns so far (oldest first) and the article the person chose to ask about, if any."""

    turns: tuple[Turn, ...] = ()
    focus: str | None = None

    @property
    def last(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    @property
    def article_in_focus(self) -> str | None:
        """The article chosen, else the article of the last answer (a refusal since leaves it:
        "what does the union say?" refused, "who is she?" is still about the same story)."""
        if self.focus is not None:
            return self.focus
        return next((turn.article_id for turn in reversed(self.turns) if turn.article_id), None)

    def then(self, turn: Turn, max_turns: int = ConversationSettings.max_turns) -> Conversation:
        """This conversation with `turn` added, keeping the last `max_turns`."""
        return replace(self, turns=(*self.turns, turn)[-max_turns:])

    def focused(self, article_id: str | None) -> Conversation:
        """The person chose an article to ask about (None: every article again)."""
        return replace(self, focus=article_id)


@dataclass
class _Held:
    conversation: Conversation
    used: float


@dataclass
class Conversations:
    """Conversations by key (a chat, a person in a group, an answer replied to), bounded in number
    and forgotten when idle. Not thread-safe: one event loop or one console owns it."""

    settings: ConversationSettings = field(default_factory=ConversationSettings)
    clock: Callable[[], float] = time.monotonic
    # Least recently used first.
    _held: OrderedDict[Hashable, _Held] = field(default_factory=OrderedDict)

    def get(self, key: Hashable) -> Conversation:
        """The conversation under `key`, or a new one when there is none or it went idle."""
        held = self._held.get(key)
        if held is None:
            return Conversation()
        if self.clock() - held.used > self.settings.idle_minutes * 60:
            del self._held[key]
            return Conversation()
        return held.conversation

    def find(self, key: Hashable) -> Conversation | None:
        """The conversation under `key`, or None when there is none (or it went idle)."""
        if key not in self._held:
            return None
        conversation = self.get(key)
        return conversation if key in self._held else None

    def put(self, key: Hashable, conversation: Conversation) -> None:
        now = self.clock()
        self._held[key] = _Held(conversation, now)
        self._held.move_to_end(key)
        self._forget(now)

    def drop(self, key: Hashable) -> None:
        self._held.pop(key, None)

    def __len__(self) -> int:
        return len(self._held)

    def _forget(self, now: float) -> None:
        """Drop the idle ones, oldest first, then the least recently used beyond the cap."""
        idle = self.settings.idle_minutes * 60
        while self._held:
            key, held = next(iter(self._held.items()))
            if now - held.used <= idle and len(self._held) <= self.settings.max_conversations:
                break
            del self._held[key]
