"""`articlebot`: the command line. One place turns expected failures into one line and an exit status."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config import Config, ConfigError, load_config, validate
from index.errors import ArticlebotError

if TYPE_CHECKING:
    from bot.engine import AnswerEngine

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_COMMON_DEFAULTS: dict[str, Any] = {
    "config": None,
    "articles": None,
    "index_dir": None,
    "top_k": None,
    "debug": False,
}

# Commands that live beside their front end. Each module offers
# `add_arguments(parser)` and `run(args, config) -> int`, and imports nothing heavy at import time.
PLUGIN_COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("bot.evaluation.command", "measure answer quality on a SQuAD-format file"),
    "telegram": ("bot.telegram.command", "run the Telegram bot"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `articlebot` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in _COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    _configure_logging(args.debug)
    try:
        config = config_from_args(args)
        command = args.command or "console"
        if command in PLUGIN_COMMANDS:
            module = importlib.import_module(PLUGIN_COMMANDS[command][0])
            return int(module.run(args, config))
        return int(_COMMANDS[command](args, config))
    except KeyboardInterrupt:
        print("articlebot: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ArticlebotError as error:
        if args.debug:
            raise
        print(f"articlebot: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:  # the last line of defence: one line unless --debug
        if args.debug:
            raise
        print(
            f"articlebot: error: {type(error).__name__}: {error} (run again with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    # The same options work before and after the command; SUPPRESS keeps a sub-command's
    # parser from overwriting a value given before the command with its default.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--config", metavar="PATH", help="TOML config file (default: $ARTICLEBOT_CONFIG)")
    common.add_argument("--articles", metavar="PATH", nargs="+", help="article files or folders to serve")
    common.add_argument("--index-dir", metavar="PATH", help="where the index is kept")
    common.add_argument("--top-k", metavar="N", type=int, help="passages to show per answer")
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")

    parser = argparse.ArgumentParser(
        prog="articlebot",
        description="Answer questions about news articles with quotes from them.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    index = commands.add_parser("index", parents=[common], help="build or update the index")
    index.add_argument(
        "paths", nargs="*", metavar="PATH", help="article files or folders (default: configured)"
    )
    index.add_argument("--rebuild", action="store_true", help="embed every article again from scratch")

    ask = commands.add_parser(
        "ask", parents=[common], help="answer one question ('-' reads one per line from stdin)"
    )
    ask.add_argument("question", help="the question, or - to read questions from standard input")
    ask.add_argument("--json", action="store_true", help="print one JSON object per question")

    commands.add_parser("console", parents=[common], help="ask questions interactively (the default)")
    for name, (module_name, summary) in PLUGIN_COMMANDS.items():
        sub = commands.add_parser(name, parents=[common], help=summary)
        importlib.import_module(module_name).add_arguments(sub)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """The config file and environment, then the command line on top."""
    config = load_config(args.config)
    changes: dict[str, Any] = {}
    articles = getattr(args, "paths", None) or args.articles
    if articles:
        changes["articles"] = tuple(Path(p).expanduser() for p in articles)
    if args.index_dir:
        changes["index_dir"] = Path(args.index_dir).expanduser()
    if args.top_k is not None:
        changes["top_k"] = args.top_k
    if changes:
        config = config.replace(**changes)
        try:
            validate(config)
        except ConfigError as error:
            raise ConfigError(str(error).replace("search.top_k", "--top-k")) from None
    return config


def make_engine(config: Config) -> AnswerEngine:
    from bot.engine import AnswerEngine

    return AnswerEngine(config)


def _index(args: argparse.Namespace, config: Config) -> int:
    engine = make_engine(config)
    report = engine.build(rebuild=args.rebuild, progress=sys.stderr.isatty())
    print(
        f"indexed {report.articles} article{'s' if report.articles != 1 else ''}, "
        f"{report.passages} passages ({report.embedded_articles} embedded, "
        f"{report.removed_articles} removed) in {report.seconds:.1f} s -> {config.index_dir}"
    )
    return EXIT_OK


def _ask(args: argparse.Namespace, config: Config) -> int:
    from bot.answer import QuestionError
    from bot.render import answer_to_json, render_text

    engine = make_engine(config)
    if args.question != "-":
        answer = engine.ask(args.question)
        print(json.dumps(answer_to_json(answer), ensure_ascii=False) if args.json else render_text(answer))
        return EXIT_OK
    status = EXIT_OK
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = engine.ask(line)
        except QuestionError as error:
            print(f"articlebot: error: {error}", file=sys.stderr)
            status = EXIT_ERROR
            continue
        print(
            json.dumps(answer_to_json(answer), ensure_ascii=False) if args.json else render_text(answer),
            flush=True,
        )
    return status


def _console(args: argparse.Namespace, config: Config) -> int:
    from bot.console import run_console

    return run_console(make_engine(config))


_COMMANDS = {"index": _index, "ask": _ask, "console": _console}


def _configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request URL at INFO, and Bot API URLs carry the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("bm25s").setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("index.split").setLevel(logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
