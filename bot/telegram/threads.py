"""Which conversation a Telegram message continues, and a conversation read back from an answer.

One conversation per private chat; in a group, one per person. A reply to one of the bot's answers
continues that answer's conversation, whoever replies, so two people can follow up on two answers
in one group. Answers are remembered by message for a while (bot/conversation.py bounds it); an
answer sent before the bot restarted is read back from the message itself: its "More context"
button names the passage and the answer sentence, and its bold words are the short answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import TYPE_CHECKING

from telegram import Chat, Message, MessageEntity, User
from telegram.constants import ChatType

from bot.conversation import Conversation, Turn
from bot.telegram.html import NO_ANSWER
from bot.telegram.keyboards import ContextRequest, parse_callback_data
from index.store import SearchSettings

if TYPE_CHECKING:
    from telegram import Bot

    from bot.telegram.services import BotServices
    from index.store import SearchIndex


def person_key(chat: Chat, user: User | None) -> Hashable:
    """Whose conversation a message (or a button press) belongs to when it replies to no answer."""
    if chat.type == ChatType.PRIVATE or user is None:
        return ("chat", chat.id)
    return ("person", chat.id, user.id)


def answer_key(chat_id: int, message_id: int) -> Hashable:
    """The conversation as it stood right after the answer sent as this message."""
    return ("answer", chat_id, message_id)


async def conversation_for(
    message: Message, bot: Bot, services: BotServices
) -> tuple[Hashable, Conversation]:
    """The key to keep the conversation under, and the conversation the message continues."""
    key = person_key(message.chat, message.from_user)
    own = services.conversations.get(key)
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id != bot.id:
        return key, own
    held = services.conversations.find(answer_key(replied.chat.id, replied.message_id))
    if held is None:
        turn = await restore_turn(replied, services)
        if turn is None:
            return key, own
        held = Conversation((turn,))
    # The article the person chose stays chosen.
    return key, held.focused(own.focus) if own.focus is not None else held


def remember(services: BotServices, key: Hashable, conversation: Conversation, sent: list[Message]) -> None:
    """Keep the conversation for the person and for each message of the answer."""
    services.conversations.put(key, conversation)
    for message in sent:
        services.conversations.put(answer_key(message.chat.id, message.message_id), conversation)


def context_button(message: Message) -> ContextRequest | None:
    """The "More context" request under an answer, if it still has the button."""
    markup = message.reply_markup
    if markup is None:
        return None
    for row in markup.inline_keyboard:
        for button in row:
            request = parse_callback_data(
                button.callback_data if isinstance(button.callback_data, str) else None
            )
            if isinstance(request, ContextRequest):
                return request
    return None


def answer_parts(message: Message) -> tuple[str, str | None] | None:
    """The answer sentence (the message's first paragraph) and the short answer (its first bold
    words, when they are not the whole sentence); None for a message that answers nothing."""
    text = message.text or ""
    if not text or text.startswith(NO_ANSWER):
        return None
    sentence = text.split("\n\n", 1)[0].strip()
    bold = [value for entity, value in message.parse_entities([MessageEntity.BOLD]).items() if value.strip()]
    short = bold[0].strip() if bold and bold[0].strip() != sentence and bold[0] in sentence else None
    return sentence, short


async def restore_turn(message: Message, services: BotServices) -> Turn | None:
    """The turn an answer message made, read from the message alone (after a restart)."""
    parts = answer_parts(message)
    if parts is None:
        return None
    request = context_button(message)
    passage_id = await services.resolve(request.passage_ref) if request is not None else None
    offset = request.sentence_offset if request is not None else None
    return await asyncio.to_thread(_restored, services.engine.index, passage_id, offset, *parts)


def _restored(
    index: SearchIndex, passage_id: str | None, offset: int | None, sentence_text: str, short: str | None
) -> Turn | None:
    passage = index.passage(passage_id) if passage_id is not None else None
    if passage is None:
        # No button left (or its passage is gone): the sentence is looked up by its words.
        found = index.search(sentence_text, None, k=5, settings=SearchSettings(mode="lexical"))
        passage = next((hit.passage for hit in found if sentence_text in hit.passage.text), None)
        offset = None
    if passage is None:
        return None
    sentences = index.sentences_of(passage)
    if offset is None or not 0 <= offset < len(sentences):
        sentence = next((s for s in sentences if s.text in sentence_text), None)
    else:
        sentence = sentences[offset]
    if sentence is None:
        return None
    answers = (short,) if short else ()
    return Turn(
        None,
        True,
        passage.article_id,
        passage.id,
        sentence.index,
        sentence.text,
        short,
        (sentence.index,),
        answers,
    )
