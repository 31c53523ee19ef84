"""`articlebot telegram`: run the bot. Imports python-telegram-bot only when the command runs."""

from __future__ import annotations

import argparse
import dataclasses
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

    from telegram.error import InvalidToken, NetworkError

    from bot.telegram.app import build_application, run_application

    def ready(username: str) -> None:
        print(
            f"articlebot: answering on Telegram as @{username} ({config.telegram.mode}); Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )

    application = build_application(config, on_ready=ready)
    try:
        run_application(application, config.telegram)
    except InvalidToken:
        raise ArticlebotError(
            "Telegram rejected the bot token: check TELEGRAM_BOT_TOKEN against the one @BotFather gave you"
        ) from None
    except NetworkError as error:
        where = config.telegram.api_base_url or "api.telegram.org"
        raise ArticlebotError(f"cannot reach the Telegram Bot API at {where}: {error}") from None
    return EXIT_OK
