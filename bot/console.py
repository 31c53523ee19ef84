"""The interactive console: a prompt with history, answers with the sentence highlighted."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.text import Text

from bot.answer import Answer
from bot.conversation import Conversation
from bot.engine import AnswerEngine
from bot.render import IN_FOCUS, WIDTH, quote, render_rich
from index.errors import ArticlebotError

HELP = """Ask a question about the article in your own words, e.g. "who was fired?". Follow-ups
such as "why?" or "what was his position?" are read in the light of the last answer.
  :more     show further passages for the last question
  :sources  list the articles loaded, numbered
  :use N    ask about article N alone (:use all: every article again)
  :new      start a new conversation
  :help     show this help
  :quit     leave (Ctrl-D and Ctrl-C leave too)"""


class ConsoleSession:
    """The state of one console: the conversation, and the last question's passages shown."""

    def __init__(self, engine: AnswerEngine, console: Console, *, debug: bool = False) -> None:
        self.engine = engine
        self.console = console
        self.debug = debug
        self.conversation = Conversation()
        # The last question and the conversation it was asked in, for :more.
        self.last_question: str | None = None
        self.asked_in = Conversation()
        self.shown = 0

    @property
    def width(self) -> int:
        return min(self.console.width, WIDTH)

    def handle(self, line: str) -> bool:
        """Act on one line of input; False when the user asked to leave."""
        command = line.strip()
        if not command:
            return True
        if command in (":quit", ":q", ":exit"):
            return False
        if command in (":help", ":h", "?"):
            self.console.print(HELP, highlight=False)
        elif command == ":sources":
            self.sources()
        elif command == ":more":
            self.more()
        elif command == ":new":
            self.conversation = Conversation()
            self.console.print("a new conversation: nothing asked before is leaned on", style="dim")
        elif command.split()[0] == ":use":
            self.use(command.split()[1:])
        elif command.startswith(":"):
            self.console.print(f"unknown command {command}: type :help for the list", style="red")
        else:
            self.ask(command)
        return True

    def ask(self, question: str) -> None:
        asked_in = self.conversation
        answer, self.conversation = self.engine.converse(question, asked_in)
        self.last_question, self.asked_in = answer.question, asked_in
        self.shown = len(answer.passages)
        self.console.print(render_rich(answer, width=self.width, articles=len(self.engine.index.articles)))
        if self.debug:
            threshold = self.engine.config.answer.abstain_threshold
            self.console.print(
                f"confidence {answer.confidence:.3f} (answers at {threshold:.3f} or above)", style="dim"
            )

    def more(self) -> None:
        if self.last_question is None:
            self.console.print("ask a question first; :more then shows further passages", style="yellow")
            return
        more = self.shown + self.engine.config.search.top_k
        answer: Answer = self.engine.converse(self.last_question, self.asked_in, top_k=more)[0]
        further = answer.passages[self.shown :]
        if not further:
            self.console.print("no further passages", style="yellow")
            return
        self.shown += len(further)
        for quoted in further:
            self.console.print(quote(quoted, width=self.width))

    def sources(self) -> None:
        index = self.engine.index
        focus = self.conversation.focus
        for number, article in enumerate(index.articles.values(), start=1):
            passages = index.passage_counts[article.id]
            line = Text(f"{number}. {article.title}", style="bold")
            line.append(f"  {article.date or 'undated'} · {passages} passages · {article.path}", style="dim")
            if article.id == focus:
                line.append(f" · {IN_FOCUS}", style="bold yellow")
            self.console.print(line)

    def use(self, arguments: list[str]) -> None:
        """`:use N` asks about the Nth article of :sources alone; `:use all` about every one."""
        articles = list(self.engine.index.articles.values())
        if arguments == ["all"]:
            self.conversation = self.conversation.focused(None)
            self.console.print(f"asking about every article ({len(articles)})", style="dim")
            return
        if len(arguments) != 1 or not arguments[0].isascii() or not arguments[0].isdigit():
            self.console.print(
                f"say which article: :use N (1 to {len(articles)}, as :sources lists them) or :use all",
                style="yellow",
            )
            return
        number = int(arguments[0])
        if not 1 <= number <= len(articles):
            self.console.print(
                f"there is no article {number}: :sources lists 1 to {len(articles)}", style="yellow"
            )
            return
        article = articles[number - 1]
        self.conversation = self.conversation.focused(article.id)
        self.console.print(
            f"asking about “{article.title}” alone; :use all to ask about every article", style="dim"
        )


def run_console(engine: AnswerEngine, console: Console | None = None, *, debug: bool = False) -> int:
    """Read questions until the user leaves; one failing question never ends the session. With
    `debug`, each answer is followed by the confidence it was decided on."""
    console = console or Console(highlight=False)
    engine.ensure_index()
    session = ConsoleSession(engine, console, debug=debug)
    engine.on_reload = lambda index: console.print(
        f"articles changed: now {len(index.articles)} article{'s' if len(index.articles) != 1 else ''}, "
        f"{sum(index.passage_counts.values())} passages",
        style="dim",
    )
    articles = engine.index.articles.values()
    console.print(
        f"articlebot — {len(articles)} article{'s' if len(articles) != 1 else ''} loaded "
        f"({', '.join(a.title for a in list(articles)[:3])}{'…' if len(articles) > 3 else ''}). "
        "Type a question, or :help.",
        style="dim",
    )
    for line in _lines(console):
        try:
            if not session.handle(line):
                break
        except ArticlebotError as error:
            console.print(f"{error}", style="yellow")
        except Exception as error:  # keep the session alive whatever one question does
            console.print(f"that question failed ({type(error).__name__}: {error}); try another", style="red")
    return 0


def _lines(console: Console) -> Iterator[str]:
    """Input lines: a prompt with history on a terminal, plain lines from a pipe."""
    if not sys.stdin.isatty():
        yield from (line.rstrip("\n") for line in sys.stdin)
        return
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    session: PromptSession[str] = PromptSession(history=FileHistory(str(_history_file())))
    prompt: Callable[[], str] = lambda: session.prompt("question> ")  # noqa: E731
    while True:
        try:
            yield prompt()
        except (EOFError, KeyboardInterrupt):
            console.print("bye", style="dim")
            return


def _history_file() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "articlebot"
    state.mkdir(parents=True, exist_ok=True)
    return state / "history"
