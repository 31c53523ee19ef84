"""One place wires the Application: handlers, the engine's start and stop, limits, polling or webhook."""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    BaseRateLimiter,
    CallbackQueryHandler,
    CommandHandler,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import redact
from bot.config import Config, TelegramSettings
from bot.conversation import Conversations
from bot.engine import AnswerEngine
from bot.telegram import handlers
from bot.telegram.limits import RequestLimiter
from bot.telegram.processor import FairUpdateProcessor
from bot.telegram.services import SERVICES, BotServices

log = logging.getLogger(__name__)

ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY, Update.INLINE_QUERY]
# Updates answered at once: replies overlap on the network while the model answers one at a time.
CONCURRENT_UPDATES = 32
# Of those, the most one person may hold: a question, a button press and an inline query at once
# with one to spare. Their further updates wait for their own turn, not for everyone's slots.
FAIR_SHARE = 4
# Retries of a request Telegram answered with 429 before the error handler logs it.
RATE_LIMIT_RETRIES = 3
# The first feed poll waits for the bot to be up; later ones come every ingest.poll_minutes.
FIRST_POLL_SECONDS = 5
# A made-up webhook secret: 32 random bytes, 43 characters of the alphabet Telegram accepts.
WEBHOOK_SECRET_BYTES = 32


def build_application(
    config: Config,
    *,
    engine: AnswerEngine | None = None,
    engine_factory: Callable[[], AnswerEngine] | None = None,
    concurrent_updates: int = CONCURRENT_UPDATES,
    rate_limiter: BaseRateLimiter | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> Application:
    """The bot for `config.telegram`, not yet started.

    The engine (model and index) is created in `post_init` — from `engine`, or by calling
    `engine_factory` — kept in `bot_data`, and dropped in `post_shutdown`. Up to
    `concurrent_updates` updates are handled at once, at most `FAIR_SHARE` of them one person's.
    The rate limiter defaults to `AIORateLimiter` with Telegram's limits and retries after a 429.
    """
    settings = config.telegram
    if not settings.token:
        raise ValueError("a Telegram bot token is needed")
    quiet_request_logs()
    redact_in_logs(settings.token)

    async def post_init(application: Application) -> None:
        loaded = engine or (engine_factory or (lambda: AnswerEngine(config)))()
        # Load the index and the model now, not on the first question.
        await asyncio.to_thread(loaded.ensure_index)
        await asyncio.to_thread(loaded.ask, "warm up")
        application.bot_data[SERVICES] = BotServices(
            engine=loaded,
            settings=settings,
            limiter=RequestLimiter(settings.questions_per_minute),
            conversations=Conversations(config.conversation),
        )
        if config.feeds and application.job_queue is not None:
            application.job_queue.run_repeating(
                handlers.poll_feeds,
                interval=config.ingest.poll_minutes * 60,
                first=FIRST_POLL_SECONDS,
                name="feeds",
            )
        await register_commands(application)
        if on_ready is not None:
            on_ready(application.bot.username)

    async def post_shutdown(application: Application) -> None:
        services = application.bot_data.pop(SERVICES, None)
        if services is not None:
            await asyncio.to_thread(services.close)

    # Even one update at a time goes through the processor: it counts each request as it arrives.
    processor = FairUpdateProcessor(concurrent_updates, min(FAIR_SHARE, concurrent_updates))
    builder = (
        Application.builder()
        .token(settings.token)
        .rate_limiter(rate_limiter or AIORateLimiter(max_retries=RATE_LIMIT_RETRIES))
        .concurrent_updates(processor)
        .post_init(post_init)
        .post_shutdown(post_shutdown)
    )
    if settings.api_base_url:
        api, files = api_base_urls(settings.api_base_url)
        builder = builder.base_url(api).base_file_url(files)
    application = builder.build()
    processor.on_arrival = functools.partial(handlers.count_on_arrival, application)
    add_handlers(application)
    return application


def add_handlers(application: Application) -> None:
    new_message = filters.UpdateType.MESSAGE
    private = new_message & filters.ChatType.PRIVATE
    groups = new_message & filters.ChatType.GROUPS
    application.add_handler(TypeHandler(Update, handlers.guard), group=-1)
    application.add_handlers(
        [
            CommandHandler("start", handlers.start, filters=new_message),
            CommandHandler("help", handlers.help_command, filters=new_message),
            CommandHandler("sources", handlers.sources, filters=new_message),
            CommandHandler("ask", handlers.ask_command, filters=new_message),
            CommandHandler("remove", handlers.remove_command, filters=private),
            MessageHandler(private & filters.Document.ALL, handlers.document),
            MessageHandler(private & filters.COMMAND, handlers.unknown_command),
            MessageHandler(private & filters.TEXT, handlers.private_text),
            MessageHandler(groups & filters.TEXT & ~filters.COMMAND, handlers.group_text),
            MessageHandler(private & ~filters.TEXT & ~filters.StatusUpdate.ALL, handlers.not_text),
            CallbackQueryHandler(handlers.button),
            InlineQueryHandler(handlers.inline_query),
        ]
    )
    application.add_error_handler(handlers.on_error)


async def register_commands(application: Application) -> None:
    """The command menu is a courtesy: when Telegram refuses it, the bot still answers."""
    try:
        await application.bot.set_my_commands([BotCommand(name, text) for name, text in handlers.COMMANDS])
    except TelegramError as error:
        log.warning("setMyCommands failed, going on without a command menu: %s", error)


def api_base_urls(api_base_url: str) -> tuple[str, str]:
    """python-telegram-bot's `base_url` and `base_file_url` for a (self-hosted) Bot API server.

    Accepts the server's root ("http://localhost:8081") or a full base ending in "/bot".
    """
    root = api_base_url.rstrip("/")
    if root.endswith("/bot"):
        root = root[: -len("/bot")]
    return f"{root}/bot", f"{root}/file/bot"


def quiet_request_logs() -> None:
    """httpx logs every request URL at INFO, and Bot API URLs carry the token."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def redact_in_logs(secret: str) -> None:
    """Keep a token's secret half (or a whole webhook secret) out of every log record and error,
    whichever library writes it (see bot/redact.py)."""
    redact.register(secret)


def webhook_arguments(settings: TelegramSettings) -> dict[str, Any]:
    """How the webhook is served: the local path is the public URL's path, never the token.

    Without a configured secret one is made up for this run and registered with `setWebhook`:
    without any, whoever reaches the port could post updates "from" an allowed user and have the
    bot answer into any chat. Telegram sends it back with every update; other posts get a 403.
    """
    assert settings.webhook_url is not None
    secret = settings.webhook_secret
    if not secret:
        secret = secrets.token_urlsafe(WEBHOOK_SECRET_BYTES)
        log.info("telegram.webhook_secret is not set: using a random secret for this run")
    # python-telegram-bot logs setWebhook's parameters at DEBUG.
    redact_in_logs(secret)
    return {
        "listen": settings.webhook_listen,
        "port": settings.webhook_port,
        "url_path": urlsplit(settings.webhook_url).path.strip("/"),
        "webhook_url": settings.webhook_url,
        "secret_token": secret,
        "allowed_updates": ALLOWED_UPDATES,
    }


def run_application(application: Application, settings: TelegramSettings) -> None:
    """Poll or serve the webhook until SIGINT or SIGTERM, then shut down cleanly."""
    if settings.mode == "webhook":
        application.run_webhook(**webhook_arguments(settings))
    else:
        application.run_polling(allowed_updates=ALLOWED_UPDATES)
