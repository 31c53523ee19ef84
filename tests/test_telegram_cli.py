"""`articlebot telegram` as a person runs it: a missing or rejected token, a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from fake_bot_api import FakeBotApi

from bot.cli import main
from bot.config import Config

ROOT = Path(__file__).resolve().parent.parent


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "ARTICLEBOT_"))}
    env.update(PYTHONPATH=str(ROOT), NO_PROXY="127.0.0.1,localhost", HF_HUB_OFFLINE="1", **extra)
    return env


def test_a_missing_token_is_one_line_and_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["telegram"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("articlebot: error: no Telegram bot token: set TELEGRAM_BOT_TOKEN")


async def test_a_rejected_token_is_one_line_and_never_printed(fake: FakeBotApi) -> None:
    wrong = "987654321:WrongSecretThatMustNotBePrinted"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "telegram",
        cwd=ROOT,
        env=_environment(TELEGRAM_BOT_TOKEN=wrong, TELEGRAM_API_BASE_URL=fake.base_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert err.decode().splitlines() == [
        "articlebot: error: Telegram rejected the bot token: check TELEGRAM_BOT_TOKEN against the one "
        "@BotFather gave you"
    ]
    assert out == b"" and b"WrongSecret" not in err
    assert [c.method for c in fake.calls] == ["getMe"]


@pytest.mark.slow
async def test_the_bot_answers_and_stops_cleanly_on_sigterm(
    fake: FakeBotApi, bundled_config: Config, engine: object
) -> None:
    """The whole command: the model loads once at start-up, a question is answered, SIGTERM ends it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "telegram",
        "--index-dir",
        str(bundled_config.index_dir),  # built by the `engine` fixture: nothing to build here
        cwd=ROOT,
        env=_environment(TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_BASE_URL=fake.base_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        ready = await asyncio.wait_for(process.stderr.readline(), 120)
        assert ready.decode().strip() == (
            "articlebot: answering on Telegram as @articlebot_test_bot (polling); Ctrl-C stops"
        )
        question = fake.inject_message("who was fired?")
        [reply] = await fake.wait_for(
            "sendMessage",
            lambda c: c.params.get("reply_parameters", {}).get("message_id") == question["message_id"],
        )
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert "Onik Gasparian" in reply.params["text"].split("\n")[0]
    assert fake.token.split(":")[1].encode() not in out + err
    assert b"Traceback" not in err
    # The updater's last getUpdates acknowledged the question, so a restart won't answer it twice.
    assert fake.successful("getUpdates")[-1].params["offset"] == 2


async def test_a_rejected_token_stays_hidden_in_the_debug_traceback(fake: FakeBotApi) -> None:
    wrong = "987654321:WrongSecretThatMustNotBePrinted"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "telegram", "--debug", cwd=ROOT,
        env=_environment(TELEGRAM_BOT_TOKEN=wrong, TELEGRAM_API_BASE_URL=fake.base_url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert b"Traceback" in err and b"<token>" in err  # the detail --debug promises, less the secret
    assert b"WrongSecret" not in out + err


@pytest.mark.parametrize("status", [200, 502])
async def test_an_error_page_echoing_the_request_path_never_prints_the_token(status: int) -> None:
    """A proxy in front of the Bot API that answers with an HTML page quoting the URL it was asked."""
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        page = f"<html><body>Cannot POST {request.path}</body></html>"
        return web.Response(status=status, text=page, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    token = "123456789:EchoedSecretThatMustNotBePrinted"
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "telegram", cwd=ROOT,
            env=_environment(TELEGRAM_BOT_TOKEN=token, TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{port}/bot"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await runner.cleanup()
    assert process.returncode == 1
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("articlebot: error: "), lines
    assert b"EchoedSecret" not in out + err
