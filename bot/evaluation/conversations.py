"""Conversations measured: chains of questions asked one after another over the configured articles.

A chain file holds one chain a line (JSON lines):

    {"chain": [{"q": "who was fired?", "answers": ["Onik Gasparian"]},
               {"q": "why?", "answers": ["an attempted military coup"]},
               {"q": "how old is he?", "unanswerable": true}]}

An answerable turn is right when the bot answers and its reply holds one of `answers` (as the
SQuAD script normalises text); an unanswerable one when the bot says the article does not answer.
Each chain is asked twice: as a conversation, and with every question asked alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.answer import OVERVIEW, Answer
from bot.conversation import Conversation
from bot.evaluation.metrics import contains_answer
from index.errors import ArticlebotError

if TYPE_CHECKING:
    from bot.engine import AnswerEngine


class ChainFormatError(ArticlebotError):
    """The file is not a chain file."""


@dataclass(frozen=True)
class ChainTurn:
    question: str
    answers: tuple[str, ...]  # empty: the articles do not answer it

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True)
class TurnOutcome:
    """What the bot did with one turn of one chain."""

    chain: int
    position: int  # 0: the chain's first question
    turn: ChainTurn
    right: bool
    answered: bool
    read_as: str | None
    reply: str

    @property
    def group(self) -> str:
        if not self.turn.answerable:
            return "refusals"
        return "first turns" if self.position == 0 else "follow-ups"


GROUPS = ("first turns", "follow-ups", "refusals")


def is_chain_file(path: Path) -> bool:
    """A chain file is JSON lines (`.jsonl`); SQuAD files are one JSON document."""
    return path.suffix.lower() == ".jsonl"


def load_chains(path: Path) -> list[list[ChainTurn]]:
    """The chains of a file, or ChainFormatError naming the line that is wrong."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ChainFormatError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ChainFormatError(f"{path} cannot be read ({error})") from None
    chains = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            chains.append(_chain(json.loads(line)))
        except (ValueError, KeyError, TypeError) as error:
            raise ChainFormatError(
                f'{path}, line {number}: expected {{"chain": [{{"q": …, "answers": […]}} or '
                f'{{"q": …, "unanswerable": true}}, …]}} ({error})'
            ) from None
    if not chains:
        raise ChainFormatError(f"{path} holds no chain")
    return chains


def _chain(value: Any) -> list[ChainTurn]:
    turns = []
    for entry in value["chain"]:
        question = entry["q"]
        answers = entry.get("answers", [])
        if not isinstance(question, str) or not question.strip():
            raise ValueError("a turn without a question")
        if not isinstance(answers, list) or not all(isinstance(a, str) and a.strip() for a in answers):
            raise ValueError("answers must be a list of strings")
        if bool(answers) == bool(entry.get("unanswerable", False)):
            raise ValueError(f'{question!r} needs either answers or "unanswerable": true')
        turns.append(ChainTurn(question, tuple(answers)))
    if not turns:
        raise ValueError("an empty chain")
    return turns


def run_chains(
    engine: AnswerEngine,
    chains: Sequence[Sequence[ChainTurn]],
    *,
    conversation: bool,
    tick: Callable[[int], None] = lambda done: None,
) -> list[TurnOutcome]:
    """Ask every chain, as a conversation or each question alone."""
    outcomes = []
    for number, chain in enumerate(chains):
        held = Conversation()
        for position, turn in enumerate(chain):
            if conversation:
                answer, held = engine.converse(turn.question, held)
            else:
                answer = engine.ask(turn.question)
            reply = reply_text(answer)
            right = (
                answer.answered and contains_answer(reply, turn.answers)
                if turn.answerable
                else not answer.answered
            )
            outcomes.append(
                TurnOutcome(number, position, turn, right, answer.answered, answer.read_as, reply)
            )
        tick(len(chain))
    return outcomes


def reply_text(answer: Answer) -> str:
    """What the reply offers as its answer: the answer sentence (the lede for a gist), or each
    article's opening sentence for an overview; empty when it answered nothing."""
    if not answer.answered:
        return ""
    if answer.kind == OVERVIEW:
        return " ".join(
            quoted.text[quoted.highlight[0] : quoted.highlight[1]]
            for quoted in answer.passages
            if quoted.highlight is not None
        )
    return answer.sentence.text if answer.sentence is not None else ""


def shares(outcomes: Sequence[TurnOutcome]) -> dict[str, tuple[int, int]]:
    """Right and asked, by group, and in all."""
    counts = {group: (0, 0) for group in (*GROUPS, "all")}
    for outcome in outcomes:
        for group in (outcome.group, "all"):
            right, asked = counts[group]
            counts[group] = (right + outcome.right, asked + 1)
    return counts


def render(on: Sequence[TurnOutcome], off: Sequence[TurnOutcome], path: Path, seconds: float) -> str:
    """The conversation on and off side by side, then every turn the conversation got wrong."""
    with_, without = shares(on), shares(off)
    chains = len({o.chain for o in on})
    lines = [
        f"{path}: {chains} chains, {len(on)} turns",
        f"{'':12}  {'conversation on':>17}  {'conversation off':>17}",
    ]
    for group in (*GROUPS, "all"):
        lines.append(f"{group:12}  {_share(*with_[group]):>17}  {_share(*without[group]):>17}")
    wrong = [o for o in on if not o.right]
    if wrong:
        lines.append("wrong with the conversation on:")
    for outcome in wrong:
        read = f" (read as {outcome.read_as!r})" if outcome.read_as else ""
        got = outcome.reply[:90] + ("…" if len(outcome.reply) > 90 else "") if outcome.answered else "refused"
        where = f"chain {outcome.chain + 1}, turn {outcome.position + 1}"
        lines.append(f"  {where}: {outcome.turn.question!r}{read} → {got}")
    lines.append(f"({seconds:.0f} s in all)")
    return "\n".join(lines)


def to_json(outcome: TurnOutcome, conversation: bool) -> dict[str, Any]:
    return {
        "conversation": conversation,
        "chain": outcome.chain + 1,
        "turn": outcome.position + 1,
        "question": outcome.turn.question,
        "answerable": outcome.turn.answerable,
        "read_as": outcome.read_as,
        "answered": outcome.answered,
        "right": outcome.right,
        "reply": outcome.reply,
    }


def _share(right: int, asked: int) -> str:
    return f"{right}/{asked} ({right / asked:.1%})" if asked else "-"
