"""`articlebot telegram`: run the bot. Imports python-telegram-bot only when the command runs."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from bot.config import Config, ConfigError, validate
from index.errors import ArticlebotError

EXIT_OK = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        choices=("polling", "webhook"),
        help="how updates arrive (default: telegram.mode in the config, else polling)",
    )


def run(args: argparse.Namespace, config: Config) -> int:
    settings = config.telegram
    if getattr(args, "mode", None):
        config = config.replace(telegram=dataclasses.replace(settings, mode=args.mode))
        validate(config)
        settings = config.telegram
    token = (settings.token or "").strip()
    if not token:
        raise ConfigError(
            "no Telegram bot token: set TELEGRAM_BOT_TOKEN (or telegram.token in the config) "
            "to the token @BotFather gave you"
        )
    config = config.replace(telegram=dataclasses.replace(settings, token=token))

    from telegram.error import InvalidToken, NetworkError, TelegramError

    from bot.telegram.app import build_application, run_application

    def ready(username: str) -> None:
        print(
            f"articlebot: answering on Telegram as @{username} ({config.telegram.mode}); Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )

    application = build_application(config, on_ready=ready)
    if not getattr(args, "debug", False):
        # The failure is said once, below; python-telegram-bot would log it with a traceback too.
        # On the handlers: a logger's own filter misses records of its children
        # ("telegram.request.BaseRequest").
        startup = _StartupFailureFilter((TelegramError, ValueError))
        for handler in logging.getLogger().handlers:
            handler.addFilter(startup)
    try:
        run_application(application, config.telegram)
    except InvalidToken:
        raise ArticlebotError(
            "Telegram rejected the bot token: check TELEGRAM_BOT_TOKEN against the one @BotFather gave you"
        ) from None
    except NetworkError as error:
        where = config.telegram.api_base_url or "api.telegram.org"
        raise ArticlebotError(f"cannot reach the Telegram Bot API at {where}: {error}") from None
    except TelegramError as error:
        where = config.telegram.api_base_url or "api.telegram.org"
        raise ArticlebotError(f"the Telegram Bot API at {where} gave an unexpected answer: {error}") from None
    return EXIT_OK


class _StartupFailureFilter(logging.Filter):
    """python-telegram-bot logs a failed start-up with a traceback; the CLI says it in one line instead."""

    def __init__(self, errors: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.errors = errors

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.name.startswith("telegram.request"):
            # "Can not load invalid JSON data": a page that is not the Bot API's, said below instead.
            return not isinstance(error, self.errors)
        return not ("Bootstrap" in record.getMessage() and isinstance(error, self.errors))
