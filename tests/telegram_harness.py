"""Run the real python-telegram-bot Application against the fake Bot API (tests and benchmark)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fake_bot_api import Call, FakeBotApi
from telegram.ext import Application, BaseRateLimiter

from bot.config import TelegramSettings
from bot.engine import AnswerEngine
from bot.telegram.app import ALLOWED_UPDATES, CONCURRENT_UPDATES, build_application


@asynccontextmanager
async def running_bot(
    fake: FakeBotApi,
    engine: AnswerEngine,
    *,
    concurrent_updates: int = CONCURRENT_UPDATES,
    rate_limiter: BaseRateLimiter | None = None,
    **telegram: Any,
) -> AsyncIterator[Application]:
    """The bot, polling the fake server, with `engine` and these `[telegram]` settings.

    As measured with python-telegram-bot 22.8: `async with application` does not run
    `post_init`, so it is called here; the updater stops before the application, both inside
    the `async with`, while the fake server is still up for the updater's last getUpdates.
    """
    settings = TelegramSettings(token=fake.token, api_base_url=fake.base_url, **telegram)
    config = dataclasses.replace(engine.config, telegram=settings)
    application = build_application(
        config, engine=engine, concurrent_updates=concurrent_updates, rate_limiter=rate_limiter
    )
    async with application:
        assert application.post_init is not None and application.post_shutdown is not None
        await application.post_init(application)
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0, timeout=2, allowed_updates=ALLOWED_UPDATES)
        await application.start()
        try:
            yield application
        finally:
            await application.updater.stop()
            await application.stop()
            await application.post_shutdown(application)


async def settle(fake: FakeBotApi, application: Application) -> None:
    """Until every injected update has been fetched and fully handled."""
    await fake.wait_delivered()
    await application.update_queue.join()


def replies_to(message: dict[str, Any]) -> Any:
    """A `wait_for` filter: messages sent in reply to `message`."""

    def match(call: Call) -> bool:
        reply = call.params.get("reply_parameters") or {}
        return (
            call.params["chat_id"] == message["chat"]["id"]
            and reply.get("message_id") == message["message_id"]
        )

    return match
