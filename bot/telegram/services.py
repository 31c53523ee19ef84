"""What the handlers share: the answer engine, started once, and the per-user limits."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from bot.config import TelegramSettings
from bot.telegram.keyboards import PassageRefs
from bot.telegram.limits import OncePerMinute, RequestLimiter

if TYPE_CHECKING:
    from bot.answer import Answer
    from bot.engine import AnswerEngine

# The key under which the services live in `Application.bot_data`.
SERVICES = "articlebot"


@dataclass
class BotServices:
    engine: AnswerEngine
    settings: TelegramSettings
    limiter: RequestLimiter
    refusals: OncePerMinute = field(default_factory=OncePerMinute)
    # One worker: the model answers one question at a time while the event loop keeps
    # receiving updates and sending replies.
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="articlebot-answer")
    )

    _refs: tuple[object, PassageRefs] | None = None

    def resolve(self, ref: str) -> str | None:
        """The passage id a button's reference names, in the index as it is now (articles may
        have been added since the bot started)."""
        index = self.engine.index
        if self._refs is None or self._refs[0] is not index:
            self._refs = (index, PassageRefs(passage.id for passage in index.passages))
        return self._refs[1].resolve(ref)

    async def ask(self, question: str, top_k: int | None = None) -> Answer:
        """`AnswerEngine.ask` off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, partial(self.engine.ask, question, top_k))

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
