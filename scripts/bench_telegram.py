"""Benchmark the Telegram bot: the real Application against the fake Bot API on 127.0.0.1.

    .venv/bin/python scripts/bench_telegram.py [--rounds N] [--users 1 10 50] [--questions-per-user 4]
        [--reader onnx]

Prints a table:
- latency from an injected update to the bot's recorded sendMessage (p50/p95), asked one at a
  time (0.1 s apart), beside `AnswerEngine.ask` alone on the same questions;
- questions per second one bot process answers when 1, 10 and 50 users ask at once, checking that
  every question got exactly one reply (nothing dropped) — as deployed (AIORateLimiter with
  Telegram's 30 requests/s overall limit, which the typing action counts against too) and, for
  the most users, with that overall limit lifted, which shows what the bot itself can do; and how
  many questions' reads the reader took together per forward pass (bot/read_batch.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

from fake_bot_api import Call, FakeBotApi  # noqa: E402
from telegram.ext import AIORateLimiter  # noqa: E402
from telegram_harness import running_bot, settle  # noqa: E402

from bot.answer import AnswerSettings  # noqa: E402
from bot.config import Config  # noqa: E402
from bot.engine import AnswerEngine  # noqa: E402
from bot.reader import READER_CHOICES  # noqa: E402

QUESTIONS = [
    "who was fired?",
    "Who refused to sign the order?",
    "When did the protesters invade the legislature?",
    "What did the military officers sign?",
    "How long did the fighting over Nagorno-Karabakh last?",
    "Who brokered the cease-fire deal?",
    "What is the capital of France?",
    "Who did Pashinian dismiss last week?",
]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def latency(engine: AnswerEngine, rounds: int) -> tuple[list[float], list[float]]:
    """(update → sendMessage seconds, engine.ask seconds), one question at a time."""
    through_bot: list[float] = []
    async with FakeBotApi() as fake, running_bot(fake, engine):
        for n in range(rounds):
            # A new asker each time: one person may ask only 20 questions a minute.
            asker = fake.user(20_000 + n, f"Asker{n}", None)
            question = fake.inject_message(QUESTIONS[n % len(QUESTIONS)], user=asker)
            [reply] = await fake.wait_for("sendMessage", _replying_to(question))
            through_bot.append(reply.at - fake.injected_at[fake.last_update_id])
            # Stay under Telegram's 30 requests/s (each answer is two: typing, then the reply),
            # so this measures the bot rather than AIORateLimiter's queue.
            await asyncio.sleep(0.1)
    alone = []
    for n in range(rounds):
        started = time.perf_counter()
        engine.ask(QUESTIONS[n % len(QUESTIONS)])
        alone.append(time.perf_counter() - started)
    return through_bot, alone


async def throughput(
    engine: AnswerEngine, users: int, per_user: int, lifted: bool
) -> tuple[float, int, int, float]:
    """(questions per second, questions asked, questions answered exactly once, reads per forward
    pass) with all users at once."""
    limiter = AIORateLimiter(overall_max_rate=0, max_retries=3) if lifted else None
    async with FakeBotApi() as fake, running_bot(fake, engine, rate_limiter=limiter) as app:
        gatherer = engine.reader._gatherer
        people = [fake.user(10_000 + n, f"User{n}", f"user{n}") for n in range(users)]
        started = time.perf_counter()
        asked = [
            fake.inject_message(QUESTIONS[(n + round_) % len(QUESTIONS)], user=person)
            for round_ in range(per_user)
            for n, person in enumerate(people)
        ]
        await fake.wait_for("sendMessage", count=len(asked), timeout=600)
        finished = max(c.at for c in fake.successful("sendMessage"))
        await settle(fake, app)
        replies: dict[tuple[int, int], int] = {}
        for call in fake.successful("sendMessage"):
            key = (call.params["chat_id"], call.params["reply_parameters"]["message_id"])
            replies[key] = replies.get(key, 0) + 1
        once = sum(replies.get((m["chat"]["id"], m["message_id"]), 0) == 1 for m in asked)
        together = gatherer.requests / max(gatherer.passes, 1)
    return len(asked) / (finished - started), len(asked), once, together


def _replying_to(message: dict[str, Any]) -> Callable[[Call], bool]:
    def match(call: Call) -> bool:
        chat = message["chat"]["id"]
        replied = (call.params.get("reply_parameters") or {}).get("message_id")
        return call.params["chat_id"] == chat and replied == message["message_id"]

    return match


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=100, help="questions asked one at a time for latency")
    parser.add_argument(
        "--users", type=int, nargs="+", default=[1, 10, 50], help="simulated users asking at once"
    )
    parser.add_argument("--questions-per-user", type=int, default=4)
    parser.add_argument(
        "--reader",
        choices=READER_CHOICES,
        default=AnswerSettings().reader,
        help="the reader's runtime (answer.reader; default %(default)s)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        config = Config(index_dir=Path(folder) / "index", answer=AnswerSettings(reader=args.reader))
        engine = AnswerEngine(config, status=lambda message: None)
        engine.ensure_index()
        engine.ask("warm up")
        through_bot, alone = await latency(engine, args.rounds)
        runs = [(users, "as deployed (AIORateLimiter, 30 req/s)", False) for users in args.users] + [
            (max(args.users), "overall rate limit lifted", True)
        ]
        measured = [
            (users, label, await throughput(engine, users, args.questions_per_user, lifted))
            for users, label, lifted in runs
        ]

    import telegram

    ms = 1000.0
    rows = [
        ("update → sendMessage, p50", f"{percentile(through_bot, 0.5) * ms:.1f} ms"),
        ("update → sendMessage, p95", f"{percentile(through_bot, 0.95) * ms:.1f} ms"),
        ("AnswerEngine.ask alone, p50", f"{statistics.median(alone) * ms:.1f} ms"),
        ("AnswerEngine.ask alone, p95", f"{percentile(alone, 0.95) * ms:.1f} ms"),
    ]
    for users, label, (rate, asked, once, together) in measured:
        rows.append(
            (
                f"{users} users at once, {label}",
                f"{rate:.1f} questions/s ({once}/{asked} answered once; {together:.1f} reads a pass)",
            )
        )
    print(
        f"Telegram bot via the fake Bot API on 127.0.0.1 — python-telegram-bot {telegram.__version__}, "
        f"{args.rounds} sequential questions, {args.users} users × {args.questions_per_user} questions, "
        f"{os.cpu_count()} CPUs"
    )
    width = max(len(label) for label, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for label, value in rows:
        print(f"| {label.ljust(width)} | {value} |")


if __name__ == "__main__":
    asyncio.run(main())
