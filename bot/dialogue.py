"""A question in a conversation → the Answer, and the turn it adds to the conversation.

bot/followup.py decides how a question is read; this answers that reading from the index. A
question that stands alone is answered by `compose_answer` exactly as if it were the first. A
follow-up is answered within the article of the answer it leans on, unless its own words say it is
about another article (`changes_topic`): then it is a change of topic, read as asked. That check is
the one search a follow-up may cost beyond a question standing alone.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bot.answer import (
    ANSWER,
    GIST,
    OVERVIEW,
    Answer,
    AnswerSentence,
    AnswerSettings,
    compose_answer,
    quote_passage,
)
from bot.conversation import Conversation, Turn
from bot.followup import PRONOUNS, Interpretation, Kind, interpret, with_holders
from bot.reader import Reader
from index.lexical import QUESTION_WORDS, stem, tokenize, words
from index.split import Passage, Sentence
from index.store import SearchIndex, SearchSettings

# The gist: the article's opening sentences, up to this many words (at least its first sentence).
LEDE_SENTENCES = 3
LEDE_WORDS = 70
# An overview lists at most this many articles, newest first.
OVERVIEW_ARTICLES = 10

Encode = Callable[[str], "np.ndarray | None"]


@dataclass(frozen=True)
class Reply:
    """What the bot says, and the turn the conversation gains by it."""

    answer: Answer
    turn: Turn


def respond(
    question: str,
    conversation: Conversation,
    encode: Encode,
    index: SearchIndex,
    reader: Reader | None,
    search: SearchSettings = SearchSettings(),
    settings: AnswerSettings = AnswerSettings(),
) -> Reply:
    """Answer `question` as the next turn of `conversation`."""
    reading, vector = plan(question, conversation, encode, index, search)
    previous = reading.previous
    if reading.kind is Kind.GIST:
        return gist(question, index, reading.within)
    if reading.kind is Kind.NEXT and previous is not None:
        return what_comes_next(question, index, previous, reading.read_as)
    # "What else?": the answers already given to the question are left out.
    before = previous if reading.kind is Kind.ELSE else None
    answer = compose_answer(
        reading.question,
        vector,
        index,
        reader,
        search,
        settings,
        within=reading.within,
        exclude=before.given() if before is not None else None,
        # A follow-up reads the passage of the answer it leans on, whatever else the search ranks.
        near=previous.passage_id if previous is not None and reading.kind is not Kind.ALONE else None,
    )
    answer = dataclasses.replace(answer, question=question, read_as=reading.read_as, focus=reading.within)
    if before is not None and not answer.answered:
        return Reply(answer, before)  # nothing else: a further "what else?" still knows what was given
    return Reply(answer, Turn.of(answer, reading.question, before))


def plan(
    question: str, conversation: Conversation, encode: Encode, index: SearchIndex, search: SearchSettings
) -> tuple[Interpretation, np.ndarray | None]:
    """How the question is read, checked against the index, and the vector of what is searched."""
    reading = interpret(question, conversation)
    if reading.kind is Kind.GIST:
        if reading.about is not None:
            reading = dataclasses.replace(reading, within=named_article(reading.about, index))
        return reading, None
    leaned_on = reading.within
    if leaned_on is not None and leaned_on not in index.articles:
        # The article it leans on is gone (removed, or another index): nothing to lean on.
        reading = Interpretation(Kind.ALONE, question)
    elif reading.kind is Kind.NEXT:
        return reading, None
    elif (
        reading.kind is Kind.FOLLOW_UP
        and conversation.focus is None
        and leaned_on is not None
        and changes_topic(question, leaned_on, index)
    ):
        reading = Interpretation(Kind.ALONE, question)
    elif reading.kind is Kind.FOLLOW_UP and reading.read_as is not None and leaned_on is not None:
        named = with_holders(reading.question, question, index.articles[leaned_on].text)
        reading = dataclasses.replace(reading, question=named, read_as=named)
    return reading, encode(reading.question)


def named_article(name: str, index: SearchIndex) -> str | None:
    """The article that "the Tesla article", "the Corvane fire story" mean: the one whose title (or
    file name) shares the most words with the name, else the one whose passage the name's words
    find first, if it holds them all; None when nothing matches (the gist is then an overview)."""
    named = {stem(word) for word in words(name)}
    if not named:
        return None
    shared = {
        article_id: len(named & _title_terms(article.title, article_id))
        for article_id, article in index.articles.items()
    }
    best = max(shared.values(), default=0)
    if best > 0 and list(shared.values()).count(best) == 1:
        return max(shared, key=shared.__getitem__)
    found = index.search(" ".join(sorted(named)), None, k=1, settings=SearchSettings(mode="lexical"))
    if not found or not named <= _article_terms(index, found[0].passage.article_id):
        return None
    return found[0].passage.article_id


def changes_topic(question: str, article_id: str, index: SearchIndex) -> bool:
    """Whether a question that seems to lean on the last answer is about another article: two or
    more of its own words are missing from that answer's article and stand together in a passage
    of another. ("When did he first mention wireless communication?" after an answer about Armenia
    is about Tesla; "how old is he?" stays a follow-up the article may not answer.)"""
    own = {stem(word) for word in words(question)} - _NOT_OWN
    missing = own - _article_terms(index, article_id)
    if len(missing) < 2:
        return False
    lexical = SearchSettings(mode="lexical")
    found = index.search(" ".join(sorted(missing)), None, k=1, settings=lexical)
    if not found or found[0].passage.article_id == article_id:
        return False
    return len(missing & set(tokenize([found[0].passage.text])[0])) >= 2


# Words that are no topic: question words, pronouns, and "many" of "how many".
_NOT_OWN = frozenset(
    stem(word)
    for word in (
        *QUESTION_WORDS,
        *PRONOUNS,
        "many",
        "much",
        "often",
        "long",
        "far",
        "else",
        "also",
        "exactly",
    )
)


def _article_terms(index: SearchIndex, article_id: str) -> frozenset[str]:
    """The stemmed words of an article (worked out once per article text)."""
    return _terms_of(index.articles[article_id].text)


@functools.lru_cache(maxsize=64)
def _terms_of(text: str) -> frozenset[str]:
    return frozenset(tokenize([text])[0])


@functools.lru_cache(maxsize=4096)
def _title_terms(title: str, article_id: str) -> frozenset[str]:
    return frozenset(tokenize([f"{title} {article_id.replace('-', ' ')}"])[0])


# Answers that need no reader -------------------------------------------------------------------


def gist(question: str, index: SearchIndex, article_id: str | None) -> Reply:
    """The opening of the article in focus; with several articles and none in focus, each one's
    opening sentence, newest first."""
    if article_id is None or article_id not in index.articles:
        if len(index.articles) != 1:
            return overview(question, index)
        article_id = next(iter(index.articles))
    opening = _opening(index, article_id)
    if opening is None:
        return Reply(Answer(question, False, None, (), 0.0), Turn(None, False))
    passage, lede = opening
    answer = _quoting(question, index, passage, lede, kind=GIST)
    last = index.sentences_of(passage)
    last_number = max(s.index for s in last if s.start < lede.end)
    return Reply(answer, Turn(None, True, article_id, passage.id, last_number, lede.text, None))


def _quoting(
    question: str,
    index: SearchIndex,
    passage: Passage,
    sentence: Sentence,
    kind: str = ANSWER,
    read_as: str | None = None,
) -> Answer:
    """A sentence of the article given as it stands, needing no reader; its article is in focus."""
    article = index.articles[passage.article_id]
    return Answer(
        question,
        True,
        AnswerSentence(sentence, article.title, article.date, 1.0),
        (quote_passage(passage, index, sentence),),
        1.0,
        read_as=read_as,
        kind=kind,
        focus=article.id,
    )


def overview(question: str, index: SearchIndex) -> Reply:
    """Every article (the newest `OVERVIEW_ARTICLES`) with its opening sentence."""
    articles = sorted(index.articles.values(), key=lambda a: (a.date or "", a.title), reverse=True)
    quoted = []
    for article in articles[:OVERVIEW_ARTICLES]:
        opening = _opening(index, article.id, sentences=1)
        if opening is not None:
            quoted.append(quote_passage(opening[0], index, opening[1]))
    answer = Answer(question, bool(quoted), None, tuple(quoted), 1.0 if quoted else 0.0, kind=OVERVIEW)
    return Reply(answer, Turn(None, False))


def what_comes_next(question: str, index: SearchIndex, previous: Turn, read_as: str | None) -> Reply:
    """The sentence after the last answer's, in the passage that leads up to it."""
    assert previous.article_id is not None and previous.sentence is not None
    number = previous.sentence + 1
    found = _passage_holding(index, previous.article_id, number)
    if found is None:
        # The article ends there: nothing comes next, and its last passage is the closest match.
        last = index.passage(previous.passage_id or "")
        shown = (quote_passage(last, index),) if last is not None else ()
        return Reply(Answer(question, False, None, shown, 0.0, read_as=read_as), previous)
    passage, sentence = found
    answer = _quoting(question, index, passage, sentence, read_as=read_as)
    turn = Turn(None, True, previous.article_id, passage.id, sentence.index, sentence.text, None)
    return Reply(answer, turn)


def _opening(
    index: SearchIndex, article_id: str, sentences: int = LEDE_SENTENCES
) -> tuple[Passage, Sentence] | None:
    """The first passage of an article and its opening sentences as one span (the lede)."""
    passage = index.passage(f"{article_id}#0")
    if passage is None:
        return None
    held = index.sentences_of(passage)
    chosen = held[:1]
    for sentence in held[1:sentences]:
        if sum(len(s.text.split()) for s in (*chosen, sentence)) > LEDE_WORDS:
            break
        chosen.append(sentence)
    first, last = chosen[0], chosen[-1]
    text = index.articles[article_id].text[first.start : last.end]
    return passage, Sentence(article_id, first.index, first.paragraph, first.start, last.end, text)


def _passage_holding(index: SearchIndex, article_id: str, number: int) -> tuple[Passage, Sentence] | None:
    """The passage that holds sentence `number` with the sentence before it (else any that holds
    it), and that sentence."""
    holding = [
        passage
        for passage in (
            index.passage(f"{article_id}#{n}") for n in range(index.passage_counts.get(article_id, 0))
        )
        if passage is not None and passage.first_sentence <= number <= passage.last_sentence
    ]
    if not holding:
        return None
    passage = max(holding, key=lambda p: (p.first_sentence < number, p.first_sentence))
    return passage, index.sentences_of(passage)[number - passage.first_sentence]
