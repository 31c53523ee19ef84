"""`articlebot`: the command line. One place turns expected failures into one line and an exit status."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config import Config, ConfigError, load_config, validate
from index.errors import ArticlebotError

if TYPE_CHECKING:
    from bot.engine import AnswerEngine, Ingest

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
    except BrokenPipeError:
        # Whoever read the output stopped (`articlebot ask … | head -3`): stop quietly, as Unix
        # tools do, and keep Python's own flush at exit from raising it again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except ArticlebotError as error:
        _report(f"articlebot: error: {error}", debug=args.debug)
        return EXIT_ERROR
    except Exception as error:  # the last line of defence: one line unless --debug
        _report(
            f"articlebot: error: {type(error).__name__}: {error} (run again with --debug for details)",
            debug=args.debug,
        )
        return EXIT_ERROR


def _report(line: str, *, debug: bool) -> None:
    """The error as one line, or with `--debug` its traceback; neither ever shows the bot token."""
    from bot.redact import redact

    text = traceback.format_exc().rstrip() if debug else line
    print(redact(text), file=sys.stderr)


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
    index.add_argument(
        "--check", action="store_true", help="verify every file of the index against its checksum, then stop"
    )

    ask = commands.add_parser(
        "ask", parents=[common], help="answer one question ('-' reads one per line from stdin)"
    )
    ask.add_argument("question", help="the question, or - to read questions from standard input")
    ask.add_argument("--json", action="store_true", help="print one JSON object per question")
    ask.add_argument(
        "--conversation",
        action="store_true",
        help="with -: the lines are one conversation, each question read in the light of those before "
        "it; an empty line starts a new one",
    )

    commands.add_parser("console", parents=[common], help="ask questions interactively (the default)")

    add = commands.add_parser(
        "add",
        parents=[common],
        help="add articles from page or feed URLs, or .html/.txt/.md files, and update the index",
    )
    add.add_argument("sources", nargs="+", metavar="SOURCE", help="a page URL, a feed URL, or a file")
    add.add_argument(
        "--to",
        metavar="DIR",
        help="the folder to save into (default: the first configured articles folder, or your own "
        "articles folder beside the bundled article)",
    )
    _allow_private(add)

    follow = commands.add_parser(
        "follow",
        parents=[common],
        help="poll the configured feeds every ingest.poll_minutes and add what is new",
    )
    follow.add_argument("--once", action="store_true", help="poll once, then stop (for cron or a timer)")
    _allow_private(follow)
    for name, (module_name, summary) in PLUGIN_COMMANDS.items():
        sub = commands.add_parser(name, parents=[common], help=summary)
        importlib.import_module(module_name).add_arguments(sub)
    return parser


def _allow_private(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-private",
        action="store_true",
        help="fetch from loopback, private and link-local addresses too (ingest.allow_private)",
    )


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
        try:
            changes["search"] = dataclasses.replace(config.search, top_k=args.top_k)
        except ValueError as error:
            raise ConfigError(f"--{error}".replace("top_k", "top-k", 1)) from None
    if changes:
        config = config.replace(**changes)
        validate(config)
    return config


def make_engine(config: Config) -> AnswerEngine:
    from bot.engine import AnswerEngine

    return AnswerEngine(config)


def _index(args: argparse.Namespace, config: Config) -> int:
    if args.check:
        from bot.engine import open_store

        store = open_store(config)
        try:
            print(store.check())
        except FileNotFoundError:
            missing = f"there is no index at {store.location}: build it with 'articlebot index'"
            raise ArticlebotError(missing) from None
        return EXIT_OK
    engine = make_engine(config)
    report = engine.build(rebuild=args.rebuild, progress=sys.stderr.isatty())
    print(
        f"indexed {report.articles} article{'s' if report.articles != 1 else ''}, "
        f"{report.passages} passages ({report.embedded_articles} embedded, "
        f"{report.removed_articles} removed) in {report.seconds:.1f} s -> {engine.store.location}"
    )
    return EXIT_OK


def _ask(args: argparse.Namespace, config: Config) -> int:
    from bot.render import answer_to_json, render_text

    if args.conversation and args.question != "-":
        raise ArticlebotError("--conversation reads its questions from standard input: ask - --conversation")
    engine = make_engine(config)
    if args.question == "-":
        return _ask_batch(engine, as_json=args.json, conversation=args.conversation)
    answer = engine.ask(args.question)
    if args.json:
        _print_json(answer_to_json(answer))
    else:
        print(render_text(answer, len(engine.index.articles)))
    return EXIT_OK


def _ask_batch(engine: AnswerEngine, *, as_json: bool, conversation: bool = False) -> int:
    """One question per line of standard input, read as UTF-8 whatever the locale. With `--json`,
    exactly one object per line, in order: `{"question": …, "error": …}` for a line that cannot be
    answered, so output lines always match input lines. With `conversation`, the lines are one
    conversation, and an empty line (which gets no object) starts a new one."""
    from bot.answer import QuestionError
    from bot.conversation import Conversation
    from bot.render import answer_to_json, render_text

    status = EXIT_OK
    held = Conversation()
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        question = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if conversation and not question.strip():
            held = Conversation()
            continue
        if not as_json and not question.strip():
            continue  # a blank line between questions; the JSON stream answers it, to keep lines in step
        try:
            raw.decode("utf-8")
            if conversation:
                answer, held = engine.converse(question, held)
            else:
                answer = engine.ask(question)
        except UnicodeDecodeError:
            error = "the line is not valid UTF-8"
        except QuestionError as refused:
            error = str(refused)
        else:
            if as_json:
                _print_json(answer_to_json(answer))
            else:
                print(render_text(answer, len(engine.index.articles)), flush=True)
            continue
        status = EXIT_ERROR
        if as_json:
            _print_json({"question": question, "error": error})
        else:
            print(f"articlebot: error: line {number}: {error}", file=sys.stderr, flush=True)
    return status


def _print_json(value: dict[str, Any]) -> None:
    """One JSON line on standard output in UTF-8 (JSON's own encoding), whatever the locale says."""
    sys.stdout.flush()
    sys.stdout.buffer.write(json.dumps(value, ensure_ascii=False).encode("utf-8") + b"\n")
    sys.stdout.buffer.flush()


def _console(args: argparse.Namespace, config: Config) -> int:
    from bot.console import run_console

    return run_console(make_engine(config), debug=args.debug)


def _add(args: argparse.Namespace, config: Config) -> int:
    engine = make_engine(_with_private(args, config))
    ingest = engine.add(args.sources, to=Path(args.to).expanduser() if args.to else None)
    for outcome in ingest.outcomes:
        print(outcome.line(), file=sys.stderr if outcome.failed else sys.stdout, flush=True)
    _print_update(engine, ingest)
    return EXIT_ERROR if ingest.failed else EXIT_OK


def _follow(args: argparse.Namespace, config: Config) -> int:
    import time

    if not config.feeds:
        raise ConfigError(
            'no feeds to follow: list them in the config, e.g. feeds = ["https://example.org/rss"]'
        )
    engine = make_engine(_with_private(args, config))
    minutes = config.ingest.poll_minutes
    if not args.once:
        print(
            f"articlebot: following {len(config.feeds)} feed{'s' if len(config.feeds) != 1 else ''} "
            f"every {minutes:g} minutes; Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
    while True:
        stamp = time.strftime("%Y-%m-%d %H:%M")
        try:
            ingest = engine.poll_feeds()
        except ArticlebotError as error:
            if args.once:
                raise
            # A follower runs for weeks: one failed update (a full disk, say) waits for the next poll.
            print(f"{stamp} articlebot: error: {error}", file=sys.stderr, flush=True)
            time.sleep(minutes * 60)
            continue
        for outcome in ingest.outcomes:
            print(f"{stamp} {outcome.line()}", file=sys.stderr if outcome.failed else sys.stdout, flush=True)
        _print_update(engine, ingest)
        if args.once:
            return EXIT_ERROR if ingest.failed else EXIT_OK
        time.sleep(minutes * 60)


def _with_private(args: argparse.Namespace, config: Config) -> Config:
    if not args.allow_private:
        return config
    return config.replace(ingest=dataclasses.replace(config.ingest, allow_private=True))


def _print_update(engine: AnswerEngine, ingest: Ingest) -> None:
    report = ingest.report
    if report is not None:
        print(
            f"index updated: {report.articles} article{'s' if report.articles != 1 else ''}, "
            f"{report.passages} passages ({report.embedded_articles} embedded, "
            f"{report.removed_articles} removed) in {report.seconds:.1f} s -> {engine.store.location}",
            flush=True,
        )
    elif any(outcome.changed for outcome in ingest.outcomes):
        print(
            f"articlebot: note: {ingest.folder} is not among the articles the index is built from; "
            "name it in the config's articles (or --articles) for the bot to read it",
            file=sys.stderr,
        )


_COMMANDS = {
    "index": _index,
    "ask": _ask,
    "console": _console,
    "add": _add,
    "follow": _follow,
}


def _configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request URL at INFO, and Bot API URLs carry the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("bm25s").setLevel(logging.DEBUG if debug else logging.WARNING)
    # Milvus's clients log every failed call with its traceback; the error says it in one line.
    for name in ("pymilvus", "milvus_lite"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.CRITICAL)
    logging.getLogger("articlebot.feeds").setLevel(logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
