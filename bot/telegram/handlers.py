"""Small handlers, one per kind of update; every answer comes from `AnswerEngine.ask`."""

from __future__ import annotations

import asyncio
import html
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, cast

from telegram import (
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.answer import MAX_QUESTION_CHARS, Answer, QuestionError
from bot.config import BUNDLED_ARTICLES
from bot.engine import Ingest
from bot.render import IN_FOCUS, shorten, where_in_article
from bot.telegram.context import context_html, passages_html
from bot.telegram.html import MAX_MESSAGE_LENGTH, NO_ANSWER, format_answer, format_passage, split_message
from bot.telegram.keyboards import (
    MORE_CONTEXT,
    ContextRequest,
    FocusRequest,
    OtherPassagesRequest,
    answer_keyboard,
    article_ref,
    focus_keyboard,
    parse_callback_data,
    passage_ref,
    without_button,
)
from bot.telegram.limits import Verdict
from bot.telegram.services import SERVICES, BotServices
from bot.telegram.threads import conversation_for, person_key, remember
from index.articles import ARTICLE_SUFFIXES as DOCUMENT_SUFFIXES
from index.errors import ArticlebotError
from index.web.ingest import ADDED, UPDATED

if TYPE_CHECKING:
    from telegram import Bot, InlineKeyboardMarkup
    from telegram.ext import Application

log = logging.getLogger(__name__)
# What the feeds brought, shown at INFO (the CLI shows this logger's INFO lines).
feed_log = logging.getLogger("articlebot.feeds")

Context = ContextTypes.DEFAULT_TYPE

BUNDLED_EXAMPLES = (
    "Who was fired?",
    "Who refused to sign the order?",
    "When did the protesters invade the legislature?",
)
GENERIC_EXAMPLES = ("Who is the article about?", "What happened?", "Where did it happen?")
INLINE_RESULTS = 5
INLINE_CACHE_SECONDS = 30
# A /sources button's label: Telegram shows a short line.
FOCUS_LABEL_CHARS = 40
APOLOGY = "Sorry, something went wrong while answering. Please try again in a moment."
REFUSAL = "Sorry, this bot only answers the people and chats it was set up for."
# What the refusal's button above a stranger's (empty) inline results sends: "/start private".
REFUSAL_START = "private"
# A message that is one web address and nothing else.
LONE_LINK = re.compile(r"https?://\S+", re.IGNORECASE)
NOT_TEXT = "I read text only: send your question as a message, e.g. “who was fired?”."
COMMANDS = (
    ("start", "what this bot knows and example questions"),
    ("help", "how to ask and what the buttons do"),
    ("sources", "the articles loaded"),
    ("ask", "ask a question (in groups: /ask who was fired?)"),
)


def services(context: Context) -> BotServices:
    return cast(BotServices, context.bot_data[SERVICES])


# Commands ---------------------------------------------------------------------------------------


async def start(update: Update, context: Context) -> None:
    """Greet, name the articles, and suggest three questions."""
    engine = services(context).engine
    articles = list(engine.index.articles.values())
    bundled = all(_is_bundled(article.path) for article in articles)
    examples = BUNDLED_EXAMPLES if bundled else GENERIC_EXAMPLES
    listed = "\n".join(f"• {_article_label(a.title, a.date)}" for a in articles)
    what = "this article" if len(articles) == 1 else f"these {len(articles)} articles"
    text = (
        f"Hello! I answer questions about {what} by quoting it:\n{listed}\n\n"
        "Try asking:\n"
        + "\n".join(f"• {html.escape(q)}" for q in examples)
        + "\n\n/help explains the buttons."
    )
    await _reply(update, text)


async def help_command(update: Update, context: Context) -> None:
    """How to ask, and what the buttons do."""
    username = html.escape(context.bot.username or "this_bot")
    text = (
        "<b>Ask a question</b> as a plain message. I answer with the sentence from the article that "
        "answers it (in bold), the passage it stands in, and where in the article that is. "
        "Every answer is a quote; if the article doesn't say, I tell you and show the closest passage.\n\n"
        "<b>Follow up</b> with “why?”, “what was his position?” or “what else?”: I read it in the light "
        "of my last answer, and say how I read it. Reply to an earlier answer to follow up on that one; "
        "“what is this article about?” gives its opening.\n\n"
        "<b>More context</b> shows the surrounding paragraphs. <b>Other passages</b> shows further "
        "passages that match your question.\n\n"
        f"<b>In groups</b>, mention me (@{username} who was fired?), reply to one of my messages, "
        f"or use /ask@{username} who was fired?\n\n"
        f"<b>In any chat</b>, type @{username} followed by a question to share an answer.\n\n"
        "/sources lists the articles I know, with a button to ask about one alone."
    )
    await _reply(update, text)


async def sources(update: Update, context: Context) -> None:
    """The articles loaded, numbered (for /remove), with dates and passage counts, and a button
    each to ask about that article alone."""
    service = services(context)
    index = service.engine.index
    counts = index.passage_counts
    message = update.effective_message
    focus = None
    if message is not None:
        focus = service.conversations.get(person_key(message.chat, message.from_user)).focus
    articles = list(index.articles.values())
    lines = [
        f"{number}. {_article_label(a.title, a.date)} — {_passages(counts[a.id])}"
        + (f" · <i>{IN_FOCUS}</i>" if a.id == focus else "")
        for number, a in enumerate(articles, start=1)
    ]
    footer = ""
    if len(articles) > 1:
        footer += "\n\nPress an article to ask about it alone."
    if _is_admin(update, service):
        footer += "\n\nSend a link or an .html, .txt or .md file to add an article; /remove N drops one."
    labels = [
        (a.id, shorten(f"{number}. {a.title}", FOCUS_LABEL_CHARS)) for number, a in enumerate(articles, 1)
    ]
    await _reply_in_parts(
        update, "<b>Articles loaded</b>\n" + "\n".join(lines) + footer, focus_keyboard(labels)
    )


async def focus_button(update: Update, context: Context, request: FocusRequest) -> None:
    """A /sources button: the presser's conversation asks about one article alone, or every one."""
    query = update.callback_query
    assert query is not None
    service = services(context)
    index = service.engine.index
    if query.message is None:
        await query.answer()
        return
    article_id = None
    if request.article_ref is not None:
        article_id = next((a for a in index.articles if article_ref(a) == request.article_ref), None)
        if article_id is None:
            await query.answer("That article is no longer loaded; see /sources.", show_alert=True)
            return
    key = person_key(query.message.chat, query.from_user)
    service.conversations.put(key, service.conversations.get(key).focused(article_id))
    if article_id is None:
        said = "Now answering from every article."
    else:
        said = f"Now answering from “{index.articles[article_id].title}” alone; /sources to change."
    await query.answer(shorten(said, 200))
    await context.bot.send_message(
        query.message.chat.id,
        html.escape(said),
        parse_mode=ParseMode.HTML,
        reply_parameters=ReplyParameters(query.message.message_id, allow_sending_without_reply=True),
    )


# Adding and removing articles (admins, in a private chat) ---------------------------------------


async def document(update: Update, context: Context) -> None:
    """An admin's .html, .txt or .md file becomes an article; anyone else's gets the text-only hint."""
    message = update.effective_message
    service = services(context)
    if message is None or message.document is None or not _is_admin(update, service):
        await not_text(update, context)
        return
    sent = message.document
    name = sent.file_name or "document"
    if Path(name).suffix.lower() not in DOCUMENT_SUFFIXES:
        await _reply(update, html.escape(f"I add .html, .txt and .md files as articles, not {name}."))
        return
    limit = int(service.engine.config.max_article_mb * 1_000_000)
    if sent.file_size is not None and sent.file_size > limit:
        await _reply(update, html.escape(f"{name} is over the limit of {limit / 1e6:g} MB for one article."))
        return
    await _typing(context, message.chat_id)
    file = await sent.get_file()
    data = bytes(await file.download_as_bytearray())
    ingest = await asyncio.to_thread(service.engine.add_document, name, data)
    await _reply(update, ingest_html(ingest))


async def add_link(update: Update, context: Context, url: str) -> None:
    """An admin's link: the page (or each entry of a feed) is fetched, saved and indexed."""
    message = update.effective_message
    if message is None:
        return
    await _typing(context, message.chat_id)
    ingest = await asyncio.to_thread(services(context).engine.add, [url])
    await _reply(update, ingest_html(ingest))


async def remove_command(update: Update, context: Context) -> None:
    """`/remove N`: an admin drops the Nth article of /sources."""
    service = services(context)
    if not _is_admin(update, service):
        await unknown_command(update, context)
        return
    message = update.effective_message
    argument = (message.text or "").split(maxsplit=1)[1:] if message is not None else []
    articles = list(service.engine.index.articles.values())
    if not argument or not argument[0].strip().isdigit() or not 1 <= int(argument[0]) <= len(articles):
        await _reply(
            update, f"Say which article: /remove N, with N from 1 to {len(articles)} as /sources lists them."
        )
        return
    article = articles[int(argument[0]) - 1]
    ingest = await asyncio.to_thread(service.engine.remove_article, article.id)
    await _reply(update, ingest_html(ingest))


async def poll_feeds(context: Context) -> None:
    """The JobQueue's feed poll: new entries are added and indexed, each change logged."""
    try:
        ingest = await asyncio.to_thread(services(context).engine.poll_feeds)
    except ArticlebotError as error:  # the index could not be updated: the next poll tries again
        feed_log.warning("the feeds could not be added: %s", error)
        return
    for outcome in ingest.outcomes:
        if outcome.failed:
            feed_log.warning("%s", outcome.line())
        else:
            feed_log.info("%s", outcome.line())


def ingest_html(ingest: Ingest) -> str:
    """One line per outcome: "Added: <title> (<date>), N passages", or why not."""
    counts = ingest.index.passage_counts if ingest.index is not None else {}
    by_path = (
        {}
        if ingest.index is None
        else {str(Path(a.path).resolve()): a.id for a in ingest.index.articles.values()}
    )
    lines = []
    for outcome in ingest.outcomes:
        label = _article_label(outcome.title or outcome.source, outcome.date)
        if outcome.failed:
            lines.append(html.escape(f"Could not add {outcome.source}: {outcome.reason}"))
            continue
        line = f"{outcome.status.capitalize()}: {label}"
        article_id = by_path.get(str(outcome.path.resolve())) if outcome.path is not None else None
        if article_id is not None and outcome.status in (ADDED, UPDATED):
            line += f", {_passages(counts[article_id])}"
        lines.append(line)
    return "\n".join(lines) or "Nothing to add."


async def ask_command(update: Update, context: Context) -> None:
    """`/ask question`, the way to ask in a group without a mention."""
    message = update.effective_message
    if message is None or message.text is None:
        return
    command = next(iter(message.parse_entities([MessageEntity.BOT_COMMAND]).values()), "")
    question = message.text[len(command) :].strip() if message.text.startswith(command) else ""
    if not question:
        example = html.escape(BUNDLED_EXAMPLES[0])
        await _reply(update, f"Put the question after the command, e.g. /ask {example}")
        return
    await answer_question(update, context, question)


async def unknown_command(update: Update, context: Context) -> None:
    """A command this bot doesn't have, in a private chat."""
    await _reply(update, "I don't know that command. Send your question as a message, or see /help.")


# Questions --------------------------------------------------------------------------------------


async def private_text(update: Update, context: Context) -> None:
    """In a private chat every text message is a question, but an admin's lone link, which adds
    the article. Anyone else's link is a question like any other: it never makes the bot fetch."""
    message = update.effective_message
    if message is None or message.text is None:
        return
    link = LONE_LINK.fullmatch(message.text.strip())
    if link is not None and _is_admin(update, services(context)):
        await add_link(update, context, link.group(0))
        return
    await answer_question(update, context, addressed_question(message, context.bot) or message.text)


async def group_text(update: Update, context: Context) -> None:
    """In a group, answer only when mentioned or replied to; other chatter is none of our business."""
    message = update.effective_message
    if message is None:
        return
    question = addressed_question(message, context.bot)
    if question is not None:
        await answer_question(update, context, question)


async def not_text(update: Update, context: Context) -> None:
    """Photos, stickers, voice and the like get a one-line hint."""
    await _reply(update, html.escape(NOT_TEXT))


def addressed_question(message: Message, bot: Bot) -> str | None:
    """The question of a message addressed to the bot (mention or reply), mention removed; else None."""
    text = message.text or ""
    username = (bot.username or "").lower()
    for entity, value in message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION]).items():
        is_bot = (entity.type == MessageEntity.MENTION and value.lower() == f"@{username}") or (
            entity.type == MessageEntity.TEXT_MENTION and entity.user is not None and entity.user.id == bot.id
        )
        if is_bot:
            return text.replace(value, " ", 1).strip()
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot.id:
        return text.strip()
    return None


async def answer_question(update: Update, context: Context, question: str) -> None:
    """Check the question, then reply with the quoted answer and its buttons (`guard` has checked
    the asker's pace)."""
    message = update.effective_message
    if message is None:
        return
    question = question.strip()
    if not question:
        return
    if len(question) > MAX_QUESTION_CHARS:
        await _reply(
            update,
            f"Sorry, that question is {len(question):,} characters long; please ask in at most "
            f"{MAX_QUESTION_CHARS:,}.",
        )
        return
    await _typing(context, message.chat_id)
    service = services(context)
    key, conversation = await conversation_for(message, context.bot, service)
    try:
        answer, conversation = await service.converse(question, conversation)
    except QuestionError as error:
        await _reply(update, html.escape(f"Please {error}."))
        return
    articles = len(service.engine.index.articles)
    sent = await _reply_in_parts(update, format_answer(answer, articles), answer_keyboard(answer))
    remember(service, key, conversation, sent)


# Buttons ----------------------------------------------------------------------------------------


async def button(update: Update, context: Context) -> None:
    """'More context' edits the answer in place; 'Other passages' replies. The query is always answered."""
    query = update.callback_query
    if query is None:
        return
    answered = False
    try:
        request = parse_callback_data(query.data)
        service = services(context)
        index = service.engine.index
        notice = "That passage is no longer in the index; please ask again."
        if isinstance(request, ContextRequest):
            passage_id = await service.resolve(request.passage_ref)
            text = context_html(index, passage_id, request.sentence_offset) if passage_id else None
            if text is None:
                await query.answer(notice, show_alert=True)
                answered = True
                return
            markup = query.message.reply_markup if isinstance(query.message, Message) else None
            await _show(update, context, text, without_button(markup, MORE_CONTEXT), edit=True)
        elif isinstance(request, FocusRequest):
            await focus_button(update, context, request)
            answered = True
            return
        elif isinstance(request, OtherPassagesRequest):
            ids = [pid for pid in [await service.resolve(ref) for ref in request.passage_refs] if pid]
            text = passages_html(index, ids)
            if text is None:
                await query.answer(notice, show_alert=True)
                answered = True
                return
            await _show(update, context, text, None, edit=False)
        else:
            await query.answer("This button no longer works; please ask again.")
            answered = True
            return
        await query.answer()
        answered = True
    finally:
        if not answered:
            try:
                await query.answer()
            except TelegramError as error:
                log.warning("could not answer callback query %s: %s", query.id, error)


async def _show(
    update: Update, context: Context, text: str, markup: InlineKeyboardMarkup | None, *, edit: bool
) -> None:
    """Edit the button's message when the text fits one message; otherwise reply to it in parts."""
    query = update.callback_query
    assert query is not None
    parts = split_message(text)
    if (edit and len(parts) == 1) or query.message is None:
        # An inline message has no chat to reply in: it can only be edited.
        try:
            await query.edit_message_text(parts[0], parse_mode=ParseMode.HTML, reply_markup=markup)
        except BadRequest as error:
            if "not modified" not in str(error).lower():
                raise
        return
    reply_to = ReplyParameters(query.message.message_id, allow_sending_without_reply=True)
    for number, part in enumerate(parts, start=1):
        await context.bot.send_message(
            query.message.chat.id,
            part,
            parse_mode=ParseMode.HTML,
            reply_parameters=reply_to,
            reply_markup=markup if number == len(parts) else None,
        )


# Inline mode ------------------------------------------------------------------------------------


async def inline_query(update: Update, context: Context) -> None:
    """`@bot question` in any chat: up to five quoted answers to pick from."""
    query = update.inline_query
    if query is None:
        return
    service = services(context)
    # Telegram caches results by query text: for everyone, unless personal. With an allow-list,
    # a stranger typing the same words would be shown what was found for someone allowed.
    personal = bool(service.settings.allowed_ids)
    question = query.query.strip()
    if not question:
        await query.answer([], cache_time=INLINE_CACHE_SECONDS, is_personal=personal)
        return
    try:
        answer = await service.ask(question, top_k=INLINE_RESULTS)
    except QuestionError:
        await query.answer([], cache_time=INLINE_CACHE_SECONDS, is_personal=personal)
        return
    await query.answer(inline_results(answer), cache_time=INLINE_CACHE_SECONDS, is_personal=personal)


def inline_results(answer: Answer) -> list[InlineQueryResultArticle]:
    """The answer first (its sentence as the title), then the further passages."""
    results = []
    for position, passage in enumerate(answer.passages[:INLINE_RESULTS]):
        if position == 0:
            title = answer.sentence.text if answer.answered and answer.sentence is not None else NO_ANSWER
            text = format_answer(answer)
            description = ("" if answer.answered else "Closest match: ") + passage.text
        else:
            description = where_in_article(passage.title, passage.date, passage.paragraph)
            title, text = passage.text, format_passage(passage)
        results.append(
            InlineQueryResultArticle(
                id=passage_ref(passage.passage.id),
                title=shorten(title, 256),
                description=shorten(description, 300),
                input_message_content=InputTextMessageContent(
                    split_message(text, MAX_MESSAGE_LENGTH)[0], parse_mode=ParseMode.HTML
                ),
            )
        )
    return results


# Access and errors ------------------------------------------------------------------------------


async def guard(update: Update, context: Context) -> None:
    """Runs before every handler: refuse whoever is not on the allow-list, then hold everyone to
    their requests a minute. Every kind of update that costs work counts, button presses and
    inline queries too, so no kind can be used to flood the bot; each counted as it arrived."""
    service = services(context)
    verdict = _verdict(service, update, context.bot)
    user, chat = update.effective_user, update.effective_chat
    allowed = service.settings.allowed_ids
    if allowed and not (
        (user is not None and user.id in allowed) or (chat is not None and chat.id in allowed)
    ):
        log.info(
            "refused update %s from user %s in chat %s (not on telegram.allowed_ids)",
            update.update_id,
            user.id if user else None,
            chat.id if chat else None,
        )
        await _refuse(update, context, service, verdict)
        raise ApplicationHandlerStop
    if verdict is None or verdict is Verdict.ALLOW:
        return
    if verdict is Verdict.WARN and user is not None:
        await _slow_down(update, service, service.limiter.seconds_until_free(user.id))
    raise ApplicationHandlerStop


def count_on_arrival(application: Application, update: object) -> None:
    """Count an update against its sender's limit as it arrives, before it waits behind their
    earlier ones (the update processor calls this). Counted when its turn came, a flood queued
    behind slow answers outlived the minute it was counted in: 55 of 100 questions were answered
    where 20 a minute are allowed."""
    service = application.bot_data.get(SERVICES)
    if not isinstance(service, BotServices) or not isinstance(update, Update):
        return  # not started yet: the guard counts it when it is handled
    verdict = _count(service, update, application.bot)
    if verdict is not None:
        service.arrivals[update.update_id] = verdict


def _verdict(service: BotServices, update: Update, bot: Bot) -> Verdict | None:
    """The verdict the update got on arrival, or one taken now when it was not counted then;
    None for an update that costs no work."""
    counted = service.arrivals.pop(update.update_id, None)
    return counted if counted is not None else _count(service, update, bot)


def _count(service: BotServices, update: Update, bot: Bot) -> Verdict | None:
    """Count the update against its sender's requests a minute (None: it costs no work)."""
    user = update.effective_user
    if user is None or not _costs_work(update, bot):
        return None
    return service.limiter.check(user.id)


async def _refuse(update: Update, context: Context, service: BotServices, verdict: Verdict | None) -> None:
    """Tell a stranger the bot is not for them; never run a search for them.

    A button press or an inline query waits for its answer (the client shows a spinner until
    Telegram gives up), so each gets one, up to the per-minute limit: the refusal as the button's
    note or above empty inline results, or nothing said when `refuse_silently`. A message gets the
    refusal at most once a minute, however often they write."""
    silent = service.settings.refuse_silently
    query, inline, message = update.callback_query, update.inline_query, update.message
    if query is not None or inline is not None:
        if verdict is not Verdict.ALLOW:
            return  # past the limit: a flood of presses costs no requests to Telegram
        if query is not None:
            await query.answer(None if silent else REFUSAL)
        elif inline is not None:
            button = None if silent else InlineQueryResultsButton(text=REFUSAL, start_parameter=REFUSAL_START)
            await inline.answer([], cache_time=0, is_personal=True, button=button)
        return
    if silent or message is None or not _addressed(message, context.bot):
        return
    sender = update.effective_user or update.effective_chat
    if sender is None or service.refusals.due(sender.id):
        await _reply(update, html.escape(REFUSAL))


async def _slow_down(update: Update, service: BotServices, wait: int) -> None:
    """The one notice of a burst, where the asker will see it."""
    per_minute = service.limiter.per_minute
    if update.callback_query is not None:
        await update.callback_query.answer(
            f"Slow down, please: at most {per_minute} a minute. Try again in about {wait} seconds."
        )
    elif update.inline_query is not None:
        await update.inline_query.answer(
            [],
            cache_time=0,
            button=InlineQueryResultsButton(
                text=f"Too many questions: try again in {wait} s", start_parameter="help"
            ),
        )
    else:
        await _reply(
            update,
            f"You're asking faster than I can keep up with ({per_minute} questions a minute). "
            f"Please wait about {wait} seconds, then ask again.",
        )


def _costs_work(update: Update, bot: Bot) -> bool:
    """Buttons and inline queries always do; a message only when it is meant for the bot, since
    where the bot sees all of a group's chatter it answers none of it."""
    if update.callback_query is not None or update.inline_query is not None:
        return True
    message = update.message
    return message is not None and _addressed(message, bot)


def _addressed(message: Message, bot: Bot) -> bool:
    """Would this message get an answer if its sender were allowed?"""
    if message.chat.type == ChatType.PRIVATE:
        return True
    commands = message.parse_entities([MessageEntity.BOT_COMMAND])
    command = next((text for entity, text in commands.items() if entity.offset == 0), None)
    if command is not None:
        # In a group "/ask" is for every bot there, "/ask@other_bot" for another one.
        _, _, target = command.partition("@")
        return not target or target.lower() == (bot.username or "").lower()
    return addressed_question(message, bot) is not None


async def on_error(update: object, context: Context) -> None:
    """Log with the traceback and update id; tell the user briefly, never what went wrong inside."""
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    if isinstance(error, Forbidden):
        log.info("update %s: the user blocked the bot or left the chat; skipped (%s)", update_id, error)
        return
    if isinstance(error, RetryAfter | TimedOut) or (
        isinstance(error, NetworkError) and not isinstance(error, BadRequest)
    ):
        # Polling retries on its own; a reply that still fails after the rate limiter's retries is lost.
        # (BadRequest is a NetworkError in python-telegram-bot, but it means a bug here, not a network.)
        log.warning("update %s: Telegram could not be reached or asked to slow down: %s", update_id, error)
        return
    log.error("update %s failed", update_id, exc_info=error)
    if not isinstance(update, Update):
        return
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(APOLOGY)
        elif update.effective_message is not None and update.effective_chat is not None:
            await update.effective_message.reply_text(APOLOGY)
    except TelegramError as reply_error:
        log.warning("update %s: could not send the apology: %s", update_id, reply_error)


# Sending ----------------------------------------------------------------------------------------


async def _reply(update: Update, text: str) -> None:
    """Reply to the update's message in HTML; `text` must already be escaped."""
    await _reply_in_parts(update, text, None)


async def _reply_in_parts(update: Update, text: str, markup: InlineKeyboardMarkup | None) -> list[Message]:
    """Reply with one message per part; the keyboard goes on the last. The messages sent."""
    message = update.effective_message
    if message is None:
        return []
    parts = split_message(text)
    sent = []
    for number, part in enumerate(parts, start=1):
        sent.append(
            await message.reply_text(
                part,
                parse_mode=ParseMode.HTML,
                reply_parameters=ReplyParameters(message.message_id, allow_sending_without_reply=True),
                reply_markup=markup if number == len(parts) else None,
            )
        )
    return sent


async def _typing(context: Context, chat_id: int) -> None:
    """The typing indicator is a courtesy: when Telegram refuses it, answer anyway."""
    try:
        await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
    except TelegramError as error:
        log.warning("sendChatAction failed, answering anyway: %s", error)


def _passages(count: int) -> str:
    return f"{count} passage{'s' if count != 1 else ''}"


def _is_admin(update: Update, service: BotServices) -> bool:
    """Admins act in their private chat only: a group's members would see what they add."""
    user, chat = update.effective_user, update.effective_chat
    return (
        user is not None
        and user.id in service.settings.admin_ids
        and chat is not None
        and chat.type == ChatType.PRIVATE
    )


def _article_label(title: str, date: str | None) -> str:
    return f"<b>{html.escape(title)}</b>" + (f" ({html.escape(date)})" if date else "")


def _is_bundled(path: str) -> bool:
    return Path(path).resolve().is_relative_to(BUNDLED_ARTICLES.resolve())
