"""A strict local stand-in for the Telegram Bot API, for tests and the benchmark.

The real python-telegram-bot Application talks to it over HTTP on 127.0.0.1 exactly as it
would to api.telegram.org (point `ApplicationBuilder.base_url` at `FakeBotApi.base_url`).
It serves the methods the bot uses, records every call, injects updates, and refuses what
Telegram refuses, with Telegram's error shape:

    {"ok": false, "error_code": 400, "description": "Bad Request: ..."}

It also checks the updates it injects: python-telegram-bot does not fail on a malformed
update, it logs "Error while parsing updates" and polls again forever, so a broken fake
update would otherwise show up as a test that silently times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape
from itertools import count
from pathlib import Path
from typing import Any

from aiohttp import web

MAX_MESSAGE_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64
TOKEN = "123456789:AAFakeTokenForTestsOnly-0123456789ab"
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "Articlebot", "username": "articlebot_test_bot"}

# Telegram HTML: these tags, balanced; these entities.
_ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
    "a", "tg-emoji", "code", "pre", "blockquote",
}  # fmt: skip
_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:=\"[^\"]*\"|='[^']*'|=[^\s>\"']+)?)*)\s*(/?)>"
)
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
_START_PARAMETER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CHAT_ACTIONS = {
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
}  # fmt: skip
# Parameters python-telegram-bot sends as plain strings; every other one is JSON-encoded.
_STRING_PARAMS = {
    "text", "parse_mode", "callback_query_id", "inline_query_id", "action", "url", "secret_token",
    "inline_message_id", "next_offset", "language_code", "message_text", "business_connection_id",
}  # fmt: skip


class ApiError(Exception):
    """A refusal, sent back in Telegram's error shape."""

    def __init__(self, description: str, code: int = 400, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.code = code
        self.retry_after = retry_after

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(f"Bad Request: {detail}")


@dataclass
class Call:
    """One request the bot made, decoded, and what it was answered."""

    method: str
    params: dict[str, Any]
    ok: bool
    result: Any
    at: float


@dataclass
class _Failure:
    method: str
    error: ApiError
    times: int


@dataclass
class Hold:
    """Calls kept waiting, as Telegram's flood limits keep a busy chat's messages waiting.

    `timeout` lets a held call through anyway; it stays under python-telegram-bot's 5-second
    read timeout, so a held call is answered late, never abandoned by the bot.
    """

    method: str
    where: Callable[[dict[str, Any]], bool]
    timeout: float
    released: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0  # calls held right now
    most_waiting: int = 0  # the most ever held at once

    def release(self) -> None:
        self.released.set()

    async def wait(self) -> None:
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.released.wait(), self.timeout)
        finally:
            self.waiting -= 1


@dataclass
class Chat:
    info: dict[str, Any]
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_message_id: int = 1


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_telegram_html(text: str) -> str:
    """The visible text of Telegram HTML, or ApiError for what Telegram's parser refuses."""
    return parse_telegram_html_entities(text)[0]


# The entity each tag becomes in a sent message (links need their URL: left out here).
_ENTITY_TYPES = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "code": "code",
    "pre": "pre", "blockquote": "blockquote", "tg-spoiler": "spoiler",
}  # fmt: skip


def parse_telegram_html_entities(text: str) -> tuple[str, list[dict[str, Any]]]:
    """The visible text and its formatting entities (offsets in UTF-16 units, ordered by offset as
    Telegram orders them), or ApiError for what Telegram's parser refuses."""
    out: list[str] = []
    stack: list[str] = []
    opened: list[int] = []  # where each open element began, in UTF-16 units
    entities: list[dict[str, Any]] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char == "<":
            match = _TAG.match(text, position)
            if match is None:
                raise bad_request(f"can't parse entities: Unsupported start tag at byte offset {position}")
            closing, name = match.group(1), match.group(2).lower()
            if name not in _ALLOWED_TAGS:
                raise bad_request(
                    f'can\'t parse entities: Unsupported start tag "{name}" at byte offset {position}'
                )
            if closing:
                if not stack or stack[-1] != name:
                    raise bad_request(
                        f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\""
                        if stack
                        else f"can't parse entities: Unmatched end tag at byte offset {position}"
                    )
                stack.pop()
                begun, now = opened.pop(), utf16_length("".join(out))
                if name in _ENTITY_TYPES and now > begun:
                    entities.append({"type": _ENTITY_TYPES[name], "offset": begun, "length": now - begun})
            else:
                if name == "blockquote" and "blockquote" in stack:
                    raise bad_request("can't parse entities: Blockquote entities can't be nested")
                stack.append(name)
                opened.append(utf16_length("".join(out)))
            position = match.end()
        elif char == "&":
            match = _ENTITY.match(text, position)
            if match is None:
                raise bad_request(
                    f"can't parse entities: Character '&' is reserved; escape it (byte offset {position})"
                )
            out.append(unescape(match.group(0)))
            position = match.end()
        else:
            out.append(char)
            position += 1
    if stack:
        raise bad_request(
            f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\""
        )
    return "".join(out), sorted(entities, key=lambda entity: entity["offset"])


class FakeBotApi:
    """The Bot API on 127.0.0.1: `await start()`, inject updates, read `calls`, `await stop()`."""

    def __init__(self, token: str = TOKEN, bot_user: dict[str, Any] | None = None) -> None:
        self.token = token
        self.bot_user = dict(bot_user or BOT_USER)
        self.calls: list[Call] = []
        self.chats: dict[int, Chat] = {}
        self.commands: list[dict[str, Any]] = []
        self.inline_messages: dict[str, dict[str, Any]] = {}
        self.injected_at: dict[int, float] = {}  # update id -> perf_counter when injected
        self._updates: list[dict[str, Any]] = []
        self._update_ids = count(1)
        self._query_ids = count(1)
        self._new_update = asyncio.Event()
        self._changed = asyncio.Condition()
        self._confirmed = 0  # the highest update id the bot has acknowledged with `offset`
        self._callback_queries: dict[str, bool] = {}  # id -> answered
        self._inline_queries: dict[str, bool] = {}
        self._failures: list[_Failure] = []
        self._holds: list[Hold] = []
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.port = 0
        self.files: dict[str, bytes] = {}  # file_path -> content, for getFile and the download
        self._file_ids = count(1)

    # Server -----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What `ApplicationBuilder.base_url` takes: the token and method are appended to it."""
        return f"http://127.0.0.1:{self.port}/bot"

    async def start(self) -> FakeBotApi:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        # Cancel a long poll when the client goes away, as a real server stops caring.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        self._closing = True
        self._new_update.set()  # release any long poll still waiting
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            refusal = {"ok": False, "error_code": 401, "description": "Unauthorized"}
            await self._record(Call(method, {}, False, refusal, time.perf_counter()))
            return web.json_response(refusal, status=401)
        params = await _decode(request)
        handler = getattr(self, f"_api_{method.lower()}", None)
        if handler is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        for hold in self._holds:
            if hold.method == method.lower() and not hold.released.is_set() and hold.where(params):
                await hold.wait()
        try:
            self._maybe_fail(method)
            result = await handler(params)
        except ApiError as error:
            await self._record(Call(method, params, False, error.payload(), time.perf_counter()))
            return web.json_response(error.payload(), status=error.code)
        await self._record(Call(method, params, True, result, time.perf_counter()))
        return web.json_response({"ok": True, "result": result})

    async def _download(self, request: web.Request) -> web.Response:
        """A file's bytes, at the path getFile gave, as the Bot API's file server serves them."""
        path = request.match_info["path"]
        await self._record(Call("download", {"file_path": path}, True, None, time.perf_counter()))
        if request.match_info["token"] != self.token or path not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[path], content_type="application/octet-stream")

    async def _record(self, call: Call) -> None:
        self.calls.append(call)
        async with self._changed:
            self._changed.notify_all()

    # Failures on demand -----------------------------------------------------------------------

    def fail(
        self,
        method: str,
        description: str = "Bad Request: refused by the test",
        *,
        code: int = 400,
        times: int = 1,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` with this error (429 with `retry_after`)."""
        self._failures.append(_Failure(method.lower(), ApiError(description, code, retry_after), times))

    def too_many_requests(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        self.fail(
            method,
            f"Too Many Requests: retry after {retry_after}",
            code=429,
            times=times,
            retry_after=retry_after,
        )

    def hold(
        self, method: str, where: Callable[[dict[str, Any]], bool] | None = None, *, timeout: float = 3.0
    ) -> Hold:
        """Keep calls of `method` matching `where` (their parameters) waiting until `release()`."""
        hold = Hold(method.lower(), where or (lambda params: True), timeout)
        self._holds.append(hold)
        return hold

    def _maybe_fail(self, method: str) -> None:
        for failure in self._failures:
            if failure.method == method.lower() and failure.times > 0:
                failure.times -= 1
                raise failure.error

    # Injecting updates ------------------------------------------------------------------------

    def user(
        self, user_id: int = 1001, first_name: str = "Ada", username: str | None = "ada"
    ) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        return user

    def private_chat(self, user: dict[str, Any]) -> dict[str, Any]:
        return {"id": user["id"], "type": "private", "first_name": user["first_name"]}

    def group_chat(self, chat_id: int = -1001234567890, title: str = "Readers") -> dict[str, Any]:
        return {"id": chat_id, "type": "supergroup", "title": title}

    def inject_message(
        self,
        text: str | None = None,
        *,
        user: dict[str, Any] | None = None,
        chat: dict[str, Any] | None = None,
        reply_to: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A new message from `user` (in their private chat unless `chat` is given); returns it.

        Commands get their `bot_command` entity and @mentions their `mention` entity, as
        Telegram's clients would send them.
        """
        user = user or self.user()
        chat = chat or self.private_chat(user)
        stored = self._chat(chat)
        message: dict[str, Any] = {
            "message_id": stored.next_message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": user,
            **fields,
        }
        stored.next_message_id += 1
        if text is not None:
            message["text"] = text
            entities = _entities_of(text)
            if entities:
                message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        stored.messages[message["message_id"]] = message
        self._push({"message": message})
        return message

    def document(self, content: bytes, file_name: str, mime_type: str = "text/html") -> dict[str, Any]:
        """A Document as a message carries it, its bytes kept for getFile and the download."""
        number = next(self._file_ids)
        path = f"documents/file_{number}{Path(file_name).suffix}"
        self.files[path] = content
        return {
            "file_id": f"doc{number}",
            "file_unique_id": f"udoc{number}",
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": len(content),
        }

    def inject_callback_query(
        self, message: dict[str, Any], data: str, *, user: dict[str, Any] | None = None
    ) -> str:
        """A press of an inline button on `message` (a message the bot sent); returns the query id."""
        query_id = f"cq{next(self._query_ids)}"
        self._callback_queries[query_id] = False
        self._push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user or self.user(),
                    "chat_instance": f"ci{message['chat']['id']}",
                    "message": message,
                    "data": data,
                }
            }
        )
        return query_id

    def inject_inline_query(self, query: str, *, user: dict[str, Any] | None = None) -> str:
        query_id = f"iq{next(self._query_ids)}"
        self._inline_queries[query_id] = False
        self._push(
            {"inline_query": {"id": query_id, "from": user or self.user(), "query": query, "offset": ""}}
        )
        return query_id

    def _push(self, update: dict[str, Any]) -> int:
        update = {"update_id": next(self._update_ids), **update}
        _check_update(update)
        self._updates.append(update)
        self.injected_at[update["update_id"]] = time.perf_counter()
        self._new_update.set()
        return int(update["update_id"])

    def _chat(self, info: dict[str, Any]) -> Chat:
        chat = self.chats.get(info["id"])
        if chat is None:
            chat = self.chats[info["id"]] = Chat(info)
        return chat

    # Waiting ----------------------------------------------------------------------------------

    @property
    def last_update_id(self) -> int:
        """The id of the update injected last (0 before any)."""
        return max(self.injected_at, default=0)

    async def wait_for(
        self, method: str, where: Callable[[Call], bool] | None = None, *, count: int = 1, timeout: float = 10
    ) -> list[Call]:
        """The first `count` successful calls of `method` matching `where`, waiting for them to arrive."""

        def matching() -> list[Call]:
            return [c for c in self.calls if c.method == method and c.ok and (where is None or where(c))]

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(matching()) >= count), timeout)
        return matching()[:count]

    async def wait_delivered(self, update_id: int | None = None, timeout: float = 10) -> None:
        """Until the bot has fetched update `update_id` (default: the last one) and asked for the next."""
        target = self.last_update_id if update_id is None else update_id
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self._confirmed >= target), timeout)

    def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """A message as it stands now (after any edits), as Telegram would include it in an update."""
        stored = self.chats[chat_id].messages[message_id]
        return {key: value for key, value in stored.items() if not key.startswith("_")}

    def successful(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.ok]

    def sent_texts(self, chat_id: int | None = None) -> list[str]:
        """The HTML of every message the bot sent, in order."""
        return [
            c.params["text"]
            for c in self.successful("sendMessage")
            if chat_id is None or c.params["chat_id"] == chat_id
        ]

    # Methods ----------------------------------------------------------------------------------

    async def _api_getme(self, params: dict[str, Any]) -> Any:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": True}  # fmt: skip

    async def _api_deletewebhook(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_setwebhook(self, params: dict[str, Any]) -> Any:
        if not str(params.get("url", "")).startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        return True

    async def _api_getwebhookinfo(self, params: dict[str, Any]) -> Any:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}

    async def _api_close(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_getupdates(self, params: dict[str, Any]) -> Any:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        allowed = params.get("allowed_updates") or None
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self._confirmed = max(self._confirmed, offset - 1)
            async with self._changed:
                self._changed.notify_all()
        deadline = time.monotonic() + timeout
        while True:
            pending = [u for u in self._updates if u["update_id"] >= offset and _allowed(u, allowed)]
            remaining = deadline - time.monotonic()
            if pending or remaining <= 0 or self._closing:
                return pending[:limit]
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), remaining)

    async def _api_setmycommands(self, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("commands must be a list of at most 100 BotCommand")
        for command in commands:
            if not _COMMAND.match(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("command description is empty or too long")
        self.commands = commands
        return True

    async def _api_getfile(self, params: dict[str, Any]) -> Any:
        number = str(params.get("file_id", "")).removeprefix("doc")
        path = next((p for p in self.files if p.startswith(f"documents/file_{number}.")), None)
        if path is None:
            raise bad_request("Bad Request: invalid file_id")
        return {
            "file_id": params["file_id"],
            "file_unique_id": f"udoc{number}",
            "file_size": len(self.files[path]),
            "file_path": path,
        }

    async def _api_sendchataction(self, params: dict[str, Any]) -> Any:
        self._known_chat(params.get("chat_id"))
        if params.get("action") not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    async def _api_sendmessage(self, params: dict[str, Any]) -> Any:
        chat = self._known_chat(params.get("chat_id"))
        html = _text(params, "text")
        plain = _visible_text(html, params.get("parse_mode"))
        markup = _check_markup(params.get("reply_markup"))
        replied = params.get("reply_parameters")
        if replied is not None:
            if not isinstance(replied, dict) or "message_id" not in replied:
                raise bad_request("invalid reply parameters specified")
            if int(replied["message_id"]) not in chat.messages and not replied.get(
                "allow_sending_without_reply"
            ):
                raise bad_request("message to be replied not found")
        message: dict[str, Any] = {
            "message_id": chat.next_message_id,
            "date": int(time.time()),
            "chat": chat.info,
            "from": self.bot_user,
            "text": plain,
        }
        entities = _formatting(html, params.get("parse_mode"))
        if entities:
            message["entities"] = entities
        if markup is not None:
            message["reply_markup"] = markup
        chat.next_message_id += 1
        chat.messages[message["message_id"]] = {**message, "_html": html}
        return message

    async def _api_editmessagetext(self, params: dict[str, Any]) -> Any:
        html = _text(params, "text")
        plain = _visible_text(html, params.get("parse_mode"))
        markup = _check_markup(params.get("reply_markup"))
        if params.get("inline_message_id"):
            stored = self.inline_messages.get(params["inline_message_id"])
            if stored is None:
                raise bad_request("message to edit not found")
        else:
            chat = self._known_chat(params.get("chat_id"))
            stored = chat.messages.get(int(params.get("message_id") or 0))
            if stored is None:
                raise bad_request("message to edit not found")
            if stored.get("from", {}).get("id") != self.bot_user["id"]:
                raise bad_request("message can't be edited")
        if stored.get("_html") == html and stored.get("reply_markup") == markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are exactly "
                "the same as a current content and reply markup of the message"
            )
        stored.update(text=plain, _html=html, edit_date=int(time.time()))
        stored.pop("entities", None)
        entities = _formatting(html, params.get("parse_mode"))
        if entities:
            stored["entities"] = entities
        if markup is None:
            stored.pop("reply_markup", None)
        else:
            stored["reply_markup"] = markup
        if params.get("inline_message_id"):
            return True
        return {k: v for k, v in stored.items() if not k.startswith("_")}

    async def _api_answercallbackquery(self, params: dict[str, Any]) -> Any:
        query_id = params.get("callback_query_id")
        if self._callback_queries.get(str(query_id)) is not False:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        if len(str(params.get("text") or "")) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self._callback_queries[str(query_id)] = True
        return True

    async def _api_answerinlinequery(self, params: dict[str, Any]) -> Any:
        query_id = str(params.get("inline_query_id"))
        if self._inline_queries.get(query_id) is not False:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        results = params.get("results")
        if not isinstance(results, list) or len(results) > 50:
            raise bad_request("RESULTS_TOO_MUCH")
        seen = set()
        for result in results:
            result_id = str(result.get("id", ""))
            if not 1 <= len(result_id.encode()) <= 64 or result_id in seen:
                raise bad_request("RESULT_ID_INVALID" if result_id not in seen else "RESULT_ID_DUPLICATE")
            seen.add(result_id)
            if result.get("type") != "article" or not result.get("title"):
                raise bad_request("RESULT_TYPE_INVALID")
            content = result.get("input_message_content") or {}
            _visible_text(str(content.get("message_text", "")), content.get("parse_mode"))
            _check_markup(result.get("reply_markup"))
        button = params.get("button")
        if button is not None:
            start = button.get("start_parameter") if isinstance(button, dict) else None
            if not button.get("text") or not (
                button.get("web_app") or (isinstance(start, str) and _START_PARAMETER.fullmatch(start))
            ):
                raise bad_request("BUTTON_INVALID")
        self._inline_queries[query_id] = True
        return True

    def _known_chat(self, chat_id: Any) -> Chat:
        try:
            return self.chats[int(chat_id)]
        except (KeyError, TypeError, ValueError):
            raise bad_request("chat not found") from None


# Helpers --------------------------------------------------------------------------------------


async def _decode(request: web.Request) -> dict[str, Any]:
    """Parameters as python-telegram-bot sends them: form fields, nested values as JSON."""
    if request.content_type == "application/json":
        body = await request.json()
        return dict(body) if isinstance(body, dict) else {}
    form = await request.post()
    params: dict[str, Any] = {}
    for key, value in form.items():
        if not isinstance(value, str):
            continue
        if key in _STRING_PARAMS:
            params[key] = value
            continue
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def _text(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str):
        raise bad_request("message text is empty")
    return value


def _formatting(text: str, parse_mode: Any) -> list[dict[str, Any]]:
    """The entities a sent message carries (after `_visible_text` has checked the text)."""
    if parse_mode is None or str(parse_mode).upper() != "HTML":
        return []
    return parse_telegram_html_entities(text)[1]


def _visible_text(text: str, parse_mode: Any) -> str:
    if parse_mode in (None, ""):
        plain = text
    elif str(parse_mode).upper() == "HTML":
        plain = parse_telegram_html(text)
    else:
        raise bad_request(f"unsupported parse_mode {parse_mode!r} in this fake")
    if not plain.strip():
        raise bad_request("message text is empty")
    if utf16_length(plain.strip()) > MAX_MESSAGE_LENGTH:
        raise bad_request("message is too long")
    return plain


def _check_markup(markup: Any) -> dict[str, Any] | None:
    if markup is None:
        return None
    if not isinstance(markup, dict) or not isinstance(markup.get("inline_keyboard"), list):
        raise bad_request("can't parse reply keyboard markup JSON object")
    for row in markup["inline_keyboard"]:
        for button in row:
            if not button.get("text"):
                raise bad_request("text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
                raise bad_request("BUTTON_DATA_INVALID")
    return markup


def _allowed(update: dict[str, Any], allowed: list[str] | None) -> bool:
    return allowed is None or any(kind in update for kind in allowed)


def _entities_of(text: str) -> list[dict[str, Any]]:
    """bot_command at the start and every @mention, offsets in UTF-16 units as Telegram counts."""
    entities = []
    for match in re.finditer(
        r"(?:^/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{5,32})?)|(?:(?<![\w@])@[A-Za-z0-9_]{5,32})", text
    ):
        kind = "bot_command" if match.group(0).startswith("/") else "mention"
        entities.append(
            {
                "type": kind,
                "offset": utf16_length(text[: match.start()]),
                "length": utf16_length(match.group(0)),
            }
        )
    return entities


def _check_update(update: dict[str, Any]) -> None:
    """Refuse an update Telegram would never send, before python-telegram-bot swallows it."""
    from telegram import Update

    problems = []
    message = update.get("message")
    if message is not None:
        problems += _message_problems(message)
    query = update.get("callback_query")
    if query is not None:
        if not query.get("id") or not query.get("chat_instance") or "from" not in query:
            problems.append("a callback query needs id, from and chat_instance")
        if "message" in query:
            problems += _message_problems(query["message"])
    inline = update.get("inline_query")
    if inline is not None and not {"id", "from", "query", "offset"} <= inline.keys():
        problems.append("an inline query needs id, from, query and offset")
    if problems:
        raise ValueError(f"malformed fake update {update['update_id']}: {'; '.join(problems)}")
    Update.de_json(json.loads(json.dumps(update)), None)


def _message_problems(message: dict[str, Any]) -> list[str]:
    problems = []
    if not isinstance(message.get("message_id"), int):
        problems.append("message_id must be an integer")
    if not isinstance(message.get("date"), int):
        problems.append("date must be whole seconds")
    chat = message.get("chat") or {}
    if not isinstance(chat.get("id"), int) or chat.get("type") not in (
        "private",
        "group",
        "supergroup",
        "channel",
    ):
        problems.append("chat needs an integer id and a type")
    user = message.get("from")
    if user is not None and not {"id", "is_bot", "first_name"} <= user.keys():
        problems.append("from needs id, is_bot and first_name")
    length = utf16_length(message.get("text") or "")
    for entity in message.get("entities", []):
        if entity["offset"] < 0 or entity["offset"] + entity["length"] > length:
            problems.append(f"entity {entity} lies outside the text")
    return problems
