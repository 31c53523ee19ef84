"""What the handlers share: the answer engine, started once, and the per-user limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from bot.config import TelegramSettings
from bot.conversation import Conversation, Conversations
from bot.telegram.keyboards import PassageRefs
from bot.telegram.limits import OncePerMinute, RequestLimiter, Verdict

if TYPE_CHECKING:
    from bot.answer import Answer
    from bot.engine import AnswerEngine

T = TypeVar("T")

# The key under which the services live in `Application.bot_data`.
SERVICES = "articlebot"
# Questions answered at once. Each runs `AnswerEngine.ask` on a thread of its own, and the reader
# reads their passages together (bot/read_batch.py): one forward pass over several questions, the
# first waiting at most GATHER_WINDOW seconds for the others (scripts/bench_telegram.py measures it).
ANSWER_THREADS = 8
GATHER_WINDOW = 0.005


@dataclass
class BotServices:
    engine: AnswerEngine
    settings: TelegramSettings
    limiter: RequestLimiter
    refusals: OncePerMinute = field(default_factory=OncePerMinute)
    # Answers are worked out off the event loop, which keeps receiving updates and sending replies.
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=ANSWER_THREADS, thread_name_prefix="articlebot-answer"
        )
    )

    # Every chat's conversation, in memory only (bounded by the [conversation] settings).
    conversations: Conversations = field(default_factory=Conversations)
    # Requests counted as they arrived, by update id, until the guard takes each verdict when the
    # update's turn comes (bot/telegram/handlers.py, count_on_arrival; event loop only).
    arrivals: dict[int, Verdict] = field(default_factory=dict)

    # Each article's references, worked out once per article and passage count: a passage's id
    # is its article's and its number, so a reload (an article added) hashes only what changed,
    # whichever backend holds the index.
    _refs: dict[str, tuple[int, PassageRefs]] = field(default_factory=dict)
    # Questions being answered now (changed on the event loop only).
    _asking: int = 0

    def __post_init__(self) -> None:
        self.engine.reader.gather(GATHER_WINDOW, lambda: min(self._asking, ANSWER_THREADS))

    async def resolve(self, ref: str) -> str | None:
        """The passage id a button's reference names, in the index as it is now (articles may
        have been added since the bot started); None when no live passage has it. Off the event
        loop: the first press after a start hashes every passage id of the archive."""
        # Not the answer worker: a burst of button presses must not queue before anyone's question.
        return await asyncio.to_thread(self._resolve, ref)

    def _resolve(self, ref: str) -> str | None:
        index = self.engine.index
        counts = index.passage_counts
        for article_id in set(self._refs) - set(counts):
            del self._refs[article_id]  # removed
        for article_id, count in counts.items():
            held = self._refs.get(article_id)
            if held is None or held[0] != count:
                ids = (f"{article_id}#{number}" for number in range(count))
                held = self._refs[article_id] = (count, PassageRefs(ids))
            passage_id = held[1].resolve(ref)
            if passage_id is not None and index.passage(passage_id) is not None:
                return passage_id
        return None

    async def ask(self, question: str, top_k: int | None = None) -> Answer:
        """`AnswerEngine.ask` off the event loop."""
        return await self._answering(partial(self.engine.ask, question, top_k))

    async def converse(self, question: str, conversation: Conversation) -> tuple[Answer, Conversation]:
        """`AnswerEngine.converse` off the event loop."""
        return await self._answering(partial(self.engine.converse, question, conversation))

    async def _answering(self, work: Callable[[], T]) -> T:
        """`work` on an answer thread, counted among the questions being answered (the reader waits
        for their reads a few milliseconds)."""
        loop = asyncio.get_running_loop()
        self._asking += 1
        try:
            return await loop.run_in_executor(self.executor, work)
        finally:
            self._asking -= 1

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.engine.reader.close()
