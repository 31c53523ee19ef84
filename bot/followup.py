"""Whether a question stands alone or leans on the conversation, and what it means when it leans.

Pure text rules, no model: a question is read in the light of the turn before it only when it
cannot be read without it, so that a question which stands alone is answered exactly as if it
were the first.

- "what is this article about?", "summarize", "tl;dr": the gist, the lede of the article in focus.
- "what happened next?", "tell me more": what the article says after the last answer.
- "what else?", "who else was fired?": the last question again, without the answers given.
- "why?", "when was that?": the last question with its question word swapped and its answer put in
  ("who was fired?" → Onik Gasparian → "why was Onik Gasparian fired?").
- "and Gasparian?", "what about the council?": the last question about someone else.
- "what was his position?": a pronoun with nothing in the question to refer to takes the last
  answer (or the last question's name) in its place.

A follow-up is searched within the article of the answer it leans on.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from bot.conversation import Conversation, Turn


class Kind(Enum):
    """How a question is read."""

    ALONE = "alone"  # as asked
    FOLLOW_UP = "follow-up"  # rewritten with what it leans on
    ELSE = "else"  # the last question again, without the answers already given
    NEXT = "next"  # what the article says after the last answer
    GIST = "gist"  # the lede of the article in focus, or an overview of the articles


@dataclass(frozen=True)
class Interpretation:
    """What to answer: the question the search and the reader read, and where to look."""

    kind: Kind
    question: str
    # The question after resolution, as shown to the person; None when it is read as asked.
    read_as: str | None = None
    # The article to answer from (the one in focus); None: every article.
    within: str | None = None
    # The turn it leans on.
    previous: Turn | None = None
    # The words a gist question names its article by ("the Tesla article"): bot/dialogue.py finds it.
    about: str | None = None


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_WH = _set("who whom whose what which when where why how")
_ADJUNCT_WH = _set("when where why how")
_AUX = _set(
    "is are was were be been am do does did has have had will would can could shall should may might must"
)
_DO = _set("do does did")
_PERSONAL = _set("he him his himself she her hers herself")
_PLURAL = _set("they them their theirs themselves")
_NEUTER = _set("it its")
PRONOUNS = _PERSONAL | _PLURAL | _NEUTER
_POSSESSIVE = _set("his hers its their theirs")
# Pronouns that "who" binds: "who was famed for their spirit?" asks about whoever it is.
_BOUND = _POSSESSIVE | _set("her himself herself themselves itself")
_BE = _set("is are was were be been am")
_SUBJECTS = _set("he she they it")
# Words that end the phrase an answer names: "a letter accusing …", "the council of …".
_PHRASE_ENDS = _set("who whom which that of in on at for to from by with")
_PHRASE_END = "(?:" + "|".join(sorted(_PHRASE_ENDS)) + r")\b"
# Words after which an "it is" stands for a clause to come: "is it easier to …", "was it thought that …".
_CLAUSE = _set("that to when from for if whether")
# Words that are no noun: after them "her" is an object ("told her about"), not a possessive.
_NOT_NOUN = _set(
    "a an the about after at before by for from in into of on over to with and or but as than that "
    "this then there when where why how who what which is was are were be do did does has have had "
    "not never also again ever"
)

_GIST = re.compile(
    r"(what(?:'s|’s| is| was)? (?:this|the) (?:article|story|piece|report|text|news|page)(?: (?:about|on))?"
    r"|what(?:'s|’s| is) (?:it|this) (?:all )?about"
    r"|what(?:'s|’s| is) (?:the )?(?:news|story|gist|headline|main point|point)"
    r"|what(?:'s|’s| is) (?:going on|happening|new)"
    r"|what happened"
    r"|(?:please )?(?:summari[sz]e|sum up)(?: (?:this|the|it)(?: (?:article|story))?)?(?: for me)?"
    r"|(?:give me )?(?:a |the )?(?:summary|gist|overview)(?: of (?:this|the|it)(?: (?:article|story))?)?"
    r"|tl;? ?dr|tldr)",
)
# "what is the Tesla article about?", "tl;dr of the Corvane fire story": the gist of the article named.
# A short name of a few words, none of them a preposition ("What was the name of the WWF report?"
# asks something else).
_NAME_WORD = r"(?!(?:of|in|for|by|from|with|about|on|at|to)\b)[\w'-]+"
_NAME = rf"{_NAME_WORD}(?: {_NAME_WORD}){{0,2}}"
_NAMED_GIST = re.compile(
    rf"(?:what(?:'s| is| was) (?:the|that) (?P<asked>{_NAME}) (?:article|story) about"
    r"|(?:please )?(?:summari[sz]e|sum up|tl;? ?dr(?: of)?|(?:give me )?(?:a |the )?(?:summary|gist) of)"
    rf" (?:the |that )?(?P<named>{_NAME}) (?:article|story|piece|report))"
)
_NEXT = re.compile(
    r"(?:and )?(?:then )?(?:what happened (?:next|then|after(?:wards| that| this)?|later)"
    r"|and then|then what|what next|what came next|what followed|what else happened"
    r"|(?:please )?(?:tell me more|go on|continue|more|keep going)(?: please)?)",
)
_ELSE = re.compile(r"(?:and )?(what|who|where|when|which|anything|anyone|anybody|something) else\b ?(.*)")
_BARE = re.compile(
    r"(?:and |but |so )?"
    r"((?:in|at|on|by|for|since|until|from|with) (?:what|which) [a-z]+"  # "in which city?", "by what score?"
    r"|(?:over|about|against|with|to|for|from|after) (?:what|whom)"  # "over what?", "with whom?"
    r"|(?:for )?how (?:many|much|often|long|far)"
    r"|how come|how so|why so (?:long|late|early|soon|much|many|few|slow|fast|high|low)"
    r"|why|when|where|how|who|what)"
    r"(?: (?:exactly|so|then|not))?"
    r"(?: (?:is|was|were|are|did|does|do|has|had|would|will) (?:that|this|it)"
    r"(?: (?:happen|happened|occur|occurred|take place|come about|start|end))?)?",
)
# "that conflict" after a question word, an auxiliary or a preposition (not "the fund that
# focuses on", not "announced that it"); "those districts" anywhere.
_DEMONSTRATIVE = re.compile(
    r"(?:(?:^|\b(?:who|what|which|when|where|why|how|is|was|are|were"
    r"|about|after|before|during|from|in|of|on|since|with|for|by|at) )(that)|\b(those)) ([\w-]+)"
    r"(?! (?:who|that|which)\b)",
    re.IGNORECASE,
)
_SAID = re.compile(
    r"((?:who|which [a-z]+) (?:said|says|claimed|claims|thinks|thought|believes|believed|reported|announced"
    r"|wrote|told|decided|did)) (?:so|that|this|it)"
)
_REPORTED = re.compile(r"^.{0,80}?\b(?:said|says|told \w+|claimed|claims|announced|reported)(?: that)?\s+")
_ELLIPSIS = re.compile(r"(?:and|what about|how about|and what about) (.+)")
_WORD = re.compile(r"[\w’'-]+|[^\w\s]")
# "Tesla's older brother": a possessive phrase whose head is a person is what "he" then means
# rather than its owner. Nouns for men, for women, and for either.
_MEN = _set("brother father son husband uncle nephew grandfather grandson boyfriend spokesman king")
_WOMEN = _set(
    "sister mother daughter wife aunt niece grandmother granddaughter girlfriend spokeswoman widow queen"
)
_PEOPLE = _set(
    "parent child friend boss lawyer spokesperson coach teacher deputy successor predecessor partner"
    " assistant manager bodyguard cousin sibling fiancé fiancée"
)
# "was anyone hurt?": someone unnamed, so someone of the story just told. ("Were there any
# injuries?" names what it asks about, and stands alone.)
_INDEFINITE = _set("anyone anybody someone somebody anything something everyone everybody nobody")
_NOT_TOPIC = _set("a an the not no n't any else ever also there here in of to for by at")
# An answer that is an amount, a score or a span of time.
_AMOUNT = re.compile(
    r"(?:about |around |almost |nearly |over |at least |more than |less than )?"
    r"(?:[$€£¥]?\d|(?:one|two|three|four|five|six|seven|eight|nine|ten|a few|several|dozens|hundreds"
    r"|thousands|millions) (?:[a-z]+ )?"
    r"(?:days|weeks|months|years|hours|minutes|points|times|people|percent)\b)",
    re.IGNORECASE,
)
# "any involvement by the armed forces": a quantified answer is no one "it" can point back to.
_QUANTIFIERS = _set("any no every each")
# "he went there": a verb of going takes "to" before the place that "there" stands for.
_MOTION = _set("go get move travel come return fly")
# "the mayor", "the prime minister": titles an article puts before their holder's name.
_TITLES = (
    "prime minister|foreign minister|defense minister|finance minister|minister|president|vice president"
    "|chancellor|governor|mayor|senator|king|queen|prince|princess|pope|bishop|judge|sheriff|ambassador"
    "|secretary|chairman|chairwoman|director|inspector|commissioner|council member|coach|general"
    "|captain|professor|lieutenant|sergeant|officer|detective|chief"
)
_ROLE = re.compile(rf"\bthe ({_TITLES})\b", re.IGNORECASE)


def interpret(question: str, conversation: Conversation | None = None) -> Interpretation:
    """How to read `question` after `conversation` (None or empty: it is the first question)."""
    conversation = conversation or Conversation()
    core = _core(question)
    focus = conversation.focus
    if _GIST.fullmatch(core):
        return Interpretation(Kind.GIST, question, within=conversation.article_in_focus)
    named = _NAMED_GIST.fullmatch(core)
    if named is not None:
        return Interpretation(Kind.GIST, question, about=named.group("asked") or named.group("named"))
    previous = conversation.last
    if previous is None:
        return Interpretation(Kind.ALONE, question, within=focus)
    # Leaning on an answer means reading in its article; on a refusal, in the last answer's.
    within = previous.article_id or conversation.article_in_focus
    if _NEXT.fullmatch(core):
        if previous.sentence is None:
            return Interpretation(Kind.ALONE, question, within=focus)
        return Interpretation(Kind.NEXT, question, "what the article says next", within, previous)
    other = _ELSE.fullmatch(core)
    if other is not None and previous.question:
        besides = f" (besides {previous.short})" if previous.short else ""
        if not other.group(2):  # "what else?": the last question, in its article
            asked = previous.question
            return Interpretation(Kind.ELSE, asked, asked.rstrip("?") + besides + "?", within, previous)
        # "who else was fired?" says what it asks: read as asked, the answers given left out.
        return Interpretation(Kind.ELSE, question, question.rstrip("?") + besides + "?", focus, previous)
    said = _SAID.fullmatch(core)
    if said is not None and previous.sentence_text:
        # "who announced it?" after "why was the bridge closed?": that the bridge was closed.
        statement = (core.endswith(" it") and _declarative(previous)) or ""
        if not statement:
            # "who said so?": who said what the last answer quotes.
            statement = previous.sentence_text.rstrip(" .!?")
            # "Lead inspector Marcus Oyelaran said the damage …": what was said, not who said it.
            statement = _uncapitalised(_REPORTED.sub("", statement, count=1))
        asked = _sentence_case(f"{_restore_case(said.group(1), question)} {statement}?")
        return Interpretation(Kind.FOLLOW_UP, asked, asked, within, previous)
    bare = _BARE.fullmatch(core)
    if bare is not None:
        wh = bare.group(1)
        if wh in ("how come", "how so") or wh.startswith("why so"):
            wh = "why"
        rewritten = _swap_question_word(wh, previous)
        if rewritten is not None and core.split()[-1] == "not":
            rewritten = _negated(rewritten)  # "did he attend?" "why not?" → "why did he not attend?"
        if rewritten is not None:
            return Interpretation(Kind.FOLLOW_UP, rewritten, rewritten, within, previous)
    ellipsis = _ELLIPSIS.fullmatch(core)
    if ellipsis is not None and previous.question and _is_phrase(ellipsis.group(1)):
        rewritten = _about_someone_else(previous.question, _restore_case(ellipsis.group(1), question))
        if rewritten is not None:
            # "and his father?" after "where was Tesla born?": the pronoun still means Tesla.
            rewritten = _resolve_pronouns(rewritten, previous) or rewritten
            return Interpretation(Kind.FOLLOW_UP, rewritten, rewritten, within, previous)
    if core.startswith("and ") and _WH & set(core.split()[1:2]):
        question = _sentence_case(question.split(maxsplit=1)[1])  # "and who was appointed?"
    there = _locative(question)
    placed = _there(question, there, previous) if there is not None else None
    resolved = _resolve_pronouns(placed or question, previous)
    if resolved is None and _AMOUNT.match(previous.short or "") and len(conversation.turns) > 1:
        # "who did they beat?" after "what was the score?": a score is no one; the turn before names them.
        earlier = conversation.turns[-2]
        if earlier.article_id == within:
            resolved = _resolve_pronouns(placed or question, earlier)
    resolved = resolved or placed or _definite(question)
    if resolved is not None:
        return Interpretation(Kind.FOLLOW_UP, resolved, resolved, within, previous)
    if there is not None or (within is not None and (_unnamed(core) or _outside_pronouns(question))):
        # "how many people live there?" after no place was asked for: it means a place of the
        # last answer's article, whichever; "was anyone hurt?": anyone in the story just told;
        # "who is she?" with no one to take "she" from: someone of that story. Read as asked, there.
        return Interpretation(Kind.FOLLOW_UP, question, None, within, previous)
    return Interpretation(Kind.ALONE, question, within=focus)


def with_holders(read: str, asked: str, article: str) -> str:
    """The question read, with a role the person named put as the article names the one who holds
    it: "and the mayor?" → "What did Mayor Dana Whitfield say …?" when the article speaks of
    "Mayor Dana Whitfield" (and of no other mayor), so the search and the reader find her by name
    where the article goes on to say "Whitfield"."""
    for match in _ROLE.finditer(asked):
        role = match.group(1).lower()
        title = " ".join(word.capitalize() for word in role.split())
        holders = set(re.findall(rf"\b{title} ((?:[A-Z][\w’'-]+ ){{0,2}}[A-Z][\w’'-]+)", article))
        where = re.search(rf"\bthe {role}\b", read, re.IGNORECASE)
        if len(holders) == 1 and where is not None:
            return f"{read[: where.start()]}{title} {holders.pop()}{read[where.end() :]}"
    return read


# Reading the question -----------------------------------------------------------------------------


def _core(question: str) -> str:
    """The question lower-cased, without end punctuation, quotes or extra spaces."""
    text = question.lower().replace("’", "'").strip()
    text = re.sub(r"[\"“”]", "", text)
    text = re.sub(r"[?!.\s,;:]+$", "", text)
    text = re.sub(r"^(?:ok(?:ay)?|so|well|hmm+|thanks|thank you)[, ]+", "", text)
    return re.sub(r"\s+", " ", text)


def _unnamed(core: str) -> bool:
    """A question about someone or something it does not name, and about little else: "was anyone
    hurt?", "did anybody object?" (not "did anyone from the council vote against it?")."""
    words = core.split()
    if not _INDEFINITE & set(words):
        return False
    topic = [w for w in words if w not in _WH | _AUX | PRONOUNS | _INDEFINITE | _NOT_TOPIC]
    return len(topic) <= 1


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text)


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _restore_case(lowered: str, original: str) -> str:
    """`lowered` (a piece of `_core(original)`) as `original` spells it."""
    at = original.lower().replace("’", "'").find(lowered)
    return original[at : at + len(lowered)] if at >= 0 else lowered


@lru_cache(maxsize=4096)
def _lemmas(word: str) -> dict[str, tuple[str, ...]]:
    import lemminflect

    return dict(lemminflect.getAllLemmas(word))


def _is_name(text: str) -> bool:
    """A proper name or title: capitalised words, short, no figures ("Onik Gasparian", "My Step")."""
    words = text.split()
    return (
        0 < len(words) <= 6
        and (words[0][:1].isupper() or (words[0] == "the" and len(words) > 1))  # "the Broncos"
        and not any(char.isdigit() for char in text)
        and all(w[:1].isupper() or w.lower() in {"of", "the", "and", "de", "for"} for w in words)
    )


def _noun_like(token: str, first: bool) -> bool:
    """Could this word be what a pronoun after it refers to: a name or a noun?"""
    lower = token.lower()
    if lower in _WH or lower in _AUX or lower in _NOT_NOUN or not token[:1].isalpha():
        return False
    if token[:1].isupper() and not first and lower != "i":
        return True
    lemmas = _lemmas(lower)
    return not lemmas or "NOUN" in lemmas or "PROPN" in lemmas


def _antecedent(token: str, first: bool) -> bool:
    """Could a pronoun after this word refer to it: a name, or a noun that is no adjective ("how
    old is he?" has none)?"""
    return _noun_like(token, first) and (token[:1].isupper() or "ADJ" not in _lemmas(token.lower()))


def _names(text: str, skip_first: bool = True) -> list[str]:
    """Runs of capitalised words in `text` (its first word only when `skip_first` is off)."""
    tokens = _tokens(text)
    runs: list[list[str]] = []
    current: list[str] = []
    for position, token in enumerate(tokens):
        capital = token[:1].isupper() and token.lower() not in _WH and token.lower() not in _AUX
        joins = bool(current) and token.lower() in {"of", "de"} and position + 1 < len(tokens)
        if (capital and not (skip_first and position == 0) and token != "I") or joins:
            owner = re.sub(r"['’]s?$", "", token)
            following = tokens[position + 1] if position + 1 < len(tokens) else ""
            if owner != token and following[:1].isupper():
                owner = token  # "Levi's Stadium": the possessive is part of the name
            current.append(owner)
            if owner != token:  # "Tesla's father": the name ends at its owner
                runs.append(current)
                current = []
        else:
            if current:
                runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [" ".join(run).removesuffix(" of").removesuffix(" de") for run in runs]


# Rewriting ------------------------------------------------------------------------------------


def _swap_question_word(wh: str, previous: Turn) -> str | None:
    """The previous question with `wh` for its question word, its answer put in where it stood:
    "who was fired?" + Onik Gasparian + "why" → "why was Onik Gasparian fired?"."""
    if not previous.question:
        if previous.sentence_text is None:
            return None
        return f"{_sentence_case(wh)} {_uncapitalised(previous.sentence_text.rstrip('.!?'))}?"
    text = previous.question.rstrip(" ?!.")
    tokens = [match for match in _WORD.finditer(text) if match.group() not in "?!."]
    words = [match.group() for match in tokens]
    if not words or words[0].lower() not in _WH:
        return _sentence_case(f"{wh} {_uncapitalised(text)}?")

    def rest(at: int) -> str:
        """The previous question from its `at`-th word on."""
        return text[tokens[at].start() :] if at < len(tokens) else ""

    asked = words[0].lower()
    at = 1
    # "which city", "what position", "how many seats": the question word's noun goes with it.
    while (
        at < len(words)
        and asked not in _ADJUNCT_WH
        and words[at].lower() not in _AUX
        and _noun_like(words[at], False)
    ):
        at += 1
    if (
        asked == "how"
        and at < len(words)
        and words[at].lower() in {"many", "much", "long", "old", "far", "often"}
    ):
        at += 2 if words[at].lower() in {"many", "much"} else 1
        asked = "how many"  # an amount: its answer goes in like a subject's or object's
    answer = previous.short
    if answer and asked in {"who", "whom"} and not _names(f"x {answer}"):
        # "20–18" for "who did the Broncos defeat?": the sentence's first name the question lacks.
        answer = next((n for n in _names(previous.sentence_text or "") if n not in text), None)
    if asked in _ADJUNCT_WH or not answer:
        if asked == wh:
            return None  # "when?" after a when-question: nothing to read differently
        rewritten = f"{wh} {rest(at)}"
    elif at >= len(words):
        return None
    elif words[at].lower() in _AUX and not _verb_follows(words, at):
        # The answer was the object: "who did Pashinian fire?" → "why did Pashinian fire Gasparian?"
        verb = next((i for i in range(at + 1, len(words)) if _can_be_verb(words[i])), len(words) - 1)
        asked_to = text[tokens[at].start() : tokens[verb].end()]
        after = [word.lower() for word in words[verb + 1 :]]
        if after[-2:] == ["to", "do"]:
            # "what were residents told to do?" → "… were residents told to keep their windows shut?"
            rewritten = f"{wh} {text[tokens[at].start() : tokens[len(words) - 2].end()]} {answer}"
        elif len(after) == 1 and after[0] in _PHRASE_ENDS:
            # "who did Tesla clash with?" → "over what did Tesla clash with Professor Poeschl?"
            rewritten = f"{wh} {asked_to} {rest(verb + 1)} {answer}"
        else:
            rewritten = f"{wh} {asked_to} {answer} {rest(verb + 1)}"
    elif words[at].lower() in _AUX:
        # The answer was the subject: "who was fired?" → "why was Onik Gasparian fired?"
        rewritten = f"{wh} {words[at]} {answer} {rest(at + 1)}"
    elif (verb_form := _base_form(words[at])) is not None:
        # "who mocked the prime minister?" → "why did Tiran Khachatrian mock the prime minister?"
        auxiliary = "does" if words[at].lower().endswith("s") else "did"
        rewritten = f"{wh} {auxiliary} {answer} {verb_form} {rest(at + 1)}"
    else:
        rewritten = f"{wh} {answer} {rest(at)}"
    return _sentence_case(" ".join(rewritten.split()) + "?")


def _can_be_verb(word: str) -> bool:
    return word[:1].islower() and "VERB" in _lemmas(word.lower())


def _verb_follows(words: list[str], at: int) -> bool:
    """Whether the auxiliary at `at` is followed by its verb ("was fired") rather than by a subject
    ("did Pashinian fire", "will the city run")."""
    following = words[at + 1] if at + 1 < len(words) else ""
    return _can_be_verb(following) and following.lower() not in _NOT_NOUN


def _base_form(word: str) -> str | None:
    """The verb's base form when `word` is an inflected verb ("mocked" → "mock"), else None."""
    lemmas = _lemmas(word.lower())
    verbs = lemmas.get("VERB")
    if not verbs or verbs[0] == word.lower():
        return None
    return verbs[0]


def _uncapitalised(text: str) -> str:
    """A sentence's first word lower-cased unless it is a name."""
    first, _, rest = text.partition(" ")
    if first[:1].isupper() and _lemmas(first.lower()) and first.lower() not in {"i"}:
        first = first.lower()
    return f"{first} {rest}".strip()


def _is_phrase(text: str) -> bool:
    """A few words naming someone or something ("the Broncos", "his mother"), not a clause."""
    words = text.split()
    return len(words) <= 5 and not any(
        word in _WH or word in _AUX or set(_lemmas(word)) == {"VERB"} for word in words
    )


def _about_someone_else(question: str, other: str) -> str | None:
    """The question with its last name (or "the …" phrase) replaced by `other`."""
    names = _like(_names(question), other, question)
    found = re.findall(r"\b(?:the|a|an) [a-z][\w-]*(?: [a-z][\w-]*)?", question)
    found = [f for f in found if _noun_like(f.split()[-1], False)]
    target = names[-1] if names else found[-1] if found else _subject(question)
    # "and his mother?" after "what did Tesla's father do?": one possessive for another.
    owned = re.findall(r"\b(?:[A-Z][\w-]* )*[A-Z][\w-]*['’]s? [a-z][\w-]*", question)
    if owned and re.match(r"(?:his|her|its|their|\S+['’]s?) ", other, re.IGNORECASE):
        target = owned[-1]
    if target is None:
        return None
    at = question.rfind(target)
    before = question[:at]
    if re.match(r"(?:the|a|an) ", other, re.IGNORECASE):
        # Not "the the Broncos", nor "a new a repair" after "how much would a new bridge cost?".
        before = re.sub(rf"\b(?:the|a|an)(?: (?!{_PHRASE_END})[a-z][\w-]*){{0,2}} $", "", before, flags=re.I)
    return before + other + question[at + len(target) :]


def _like(names: list[str], other: str, question: str) -> list[str]:
    """The names `other` could stand in for, most alike first kept: "and the Panthers?" after a
    question about "the Broncos" and "New England Patriots" replaces the one with "the" before it,
    and a plural for a plural."""
    plural = other.endswith("s")
    for alike in (
        lambda name: (f"the {name}" in question) == other.lower().startswith("the "),
        lambda name: name.endswith("s") == plural,
    ):
        kept = [name for name in names if alike(name)]
        names = kept or names
    return names


def _subject(question: str) -> str | None:
    """The nouns between a question's auxiliary and its verb: "what are [opposition supporters]
    expected to do?"."""
    tokens = _tokens(question)
    if len(tokens) < 3 or tokens[0].lower() not in _WH or tokens[1].lower() not in _AUX:
        return None
    subject = []
    for token in tokens[2:]:
        lemmas = _lemmas(token.lower())
        if not _noun_like(token, False) or (lemmas and set(lemmas) <= {"VERB", "AUX", "ADJ"}):
            break
        subject.append(token)
    return " ".join(subject) or None


def _outside_pronouns(question: str) -> list[tuple[int, re.Match[str]]]:
    """The pronouns of the question that refer to something outside it, with their positions among
    its words; none when the question names someone a pronoun may refer to."""
    tokens = list(_WORD.finditer(question))
    words = [match.group() for match in tokens]
    found: list[tuple[int, re.Match[str]]] = []
    for position, match in enumerate(tokens):
        if match.group().lower() not in PRONOUNS:
            continue
        asked_for = _question_phrase(words)
        # Only before the first pronoun: in "did he patent it?" "patent" follows "he", its subject.
        if not found and any(
            _antecedent(word, i == 0) for i, word in enumerate(words[asked_for:position], start=asked_for)
        ):
            return []  # "what did Tesla do with his money?": the question says whose
        if _refers_outside(words, position):
            found.append((position, match))
    return found


def _resolve_pronouns(question: str, previous: Turn) -> str | None:
    """The question with each pronoun that refers outside it replaced by what it refers to; None
    when there is none, or when one has nothing in the last turn to refer to."""
    words = [match.group() for match in _WORD.finditer(question)]
    pieces: list[str] = []
    done = 0
    taken: dict[str, str] = {}  # referents by pronoun: "he" and "it" in one question are two
    for position, match in _outside_pronouns(question):
        lower = match.group().lower()
        others = [
            referent for pronoun, referent in taken.items() if (pronoun in _NEUTER) != (lower in _NEUTER)
        ]
        referent = _referent(previous, lower, others)
        if referent is None:
            return None
        taken[lower] = referent
        following = words[position + 1].lower() if position + 1 < len(words) else ""
        possessive = lower in _POSSESSIVE or (
            lower == "her" and following.isalpha() and following not in _NOT_NOUN
        )
        pieces += [question[done : match.start()], _possessive(referent) if possessive else referent]
        done = match.end()
    if not pieces:
        return None
    return _sentence_case("".join([*pieces, question[done:]]))


def _question_phrase(words: list[str]) -> int:
    """How many words the question word and its noun take: "which team", "what position" (a
    pronoun after them still needs someone to refer to: "which team does he coach?")."""
    if not words or words[0].lower() not in _WH:
        return 0
    at = 1
    while at < len(words) and words[at].lower() not in _AUX and _noun_like(words[at], False):
        at += 1
    return at


def _definite(question: str) -> str | None:
    """ "who was that conflict with?": "that" points back at something said before; the question
    is read in the last answer's article with "the" in its place."""
    for match in _DEMONSTRATIVE.finditer(question):
        group = 1 if match.group(1) else 2
        after = question[match.end() :].split()[:1]
        clause = bool(after) and (after[0].lower() in _AUX or set(_lemmas(after[0].lower())) == {"VERB"})
        if _noun_like(match.group(3), False) and not match.group(3)[:1].isupper() and not clause:
            return question[: match.start(group)] + "the" + question[match.end(group) :]
    return None


def _asks_for_subject(words: list[str]) -> bool:
    """ "who tore his ACL?", "which receiver tore his ACL?", "who was famed for their spirit?": the
    question word is the subject (not "what was his position?", "which team does he coach?")."""
    at = _question_phrase(words)
    if at == 0 or words[0].lower() not in {"who", "which", "what"} or at >= len(words):
        return False
    following = words[at].lower()
    if following in _DO:
        return False
    if following in _BE:
        return _verb_follows(words, at)  # "who was famed …", not "what was his position?"
    return following in _AUX or _can_be_verb(words[at])


def _refers_outside(words: list[str], position: int) -> bool:
    """Whether the pronoun at `position` refers to something outside the question: not one bound
    by "who" ("who was famed for their spirit?") and not an "it" that stands for nothing ("what is it
    called when …", "is it easier to …")."""
    lower = words[position].lower()
    # "who stated he wanted …": a subject pronoun after the verb is the asker's subject too.
    bound = lower in _BOUND or (lower in _SUBJECTS and position > _question_phrase(words) + 1)
    if bound and _asks_for_subject(words):
        return False
    if lower != "it":
        return True
    if position == 0:
        return False
    after = {word.lower() for word in words[position + 1 :]}
    if words[position - 1].lower() in {"is", "was", "are", "were", "be", "been"} and after & _CLAUSE:
        return False
    return words[position + 1 : position + 2] not in (["mean"], ["means"], ["take"], ["takes"])


def _referent(previous: Turn, pronoun: str, others: Collection[str] = ()) -> str | None:
    """Who or what a pronoun most likely means after `previous`: its answer when the question asked
    for someone or something (for "he" and "she", a name); else what its question was about."""
    asked = _core(previous.question or "").split()[:1]
    short = _head(previous.short or "") or None
    action = (short or "").split(maxsplit=1)
    if len(action) == 2 and action[0].islower() and set(_lemmas(action[0])) == {"VERB"}:
        # "signed a letter" (what did the officers do?): an act, no one; "it" is what it acted on.
        short = (_head(action[1]) or None) if pronoun in _NEUTER else None
    # After "where was Tesla born?" the answer is a place and "his" means Tesla; after "when?" a date.
    names_someone = not asked or asked[0] in {"who", "whom", "whose"}
    names_something = names_someone or asked[0] in {"what", "which", "where"}
    if short and pronoun in _PERSONAL and names_someone and _is_name(short):
        return _without_title(short)
    quantified = short is not None and short.split()[0].lower() in _QUANTIFIERS
    # "24–10", "$5 million", "three months" stand for nothing a pronoun can mean, nor does what was
    # measured ("the score"): only a name the question holds, else nothing (the turn before may).
    amount = short is not None and _AMOUNT.match(short) is not None
    # "how much did he pay for it?": "it" is not whom "he" already stands for.
    taken = short is not None and _without_title(short) in others
    if short and pronoun not in _PERSONAL and names_something and not (quantified or amount or taken):
        return short
    relative = _relative(previous.question or "", pronoun)
    if relative is not None:
        return relative
    if previous.question:
        found = _names(previous.question) if pronoun in _PERSONAL else _things(previous.question, pronoun)
        found = [thing for thing in found if _is_name(thing)] if amount else found
        if found:
            return _without_title(found[0])
    if previous.sentence_text and not amount:
        names = _names(previous.sentence_text)
        if names:
            return _without_title(names[0])
    return None


def _relative(question: str, pronoun: str) -> str | None:
    """ "Tesla's older brother" in the question, when the pronoun can mean him: the person a
    possessive names is what "he" then means, rather than its owner."""
    if pronoun not in _PERSONAL:
        return None
    nouns = _PEOPLE | (_MEN if pronoun in _set("he him his himself") else _WOMEN)
    for match in re.finditer(r"\b(?:[A-Z][\w-]* )*[A-Z][\w-]*['’]s? (?:[a-z-]+ )?([a-z]+)\b", question):
        if match.group(1) in nouns:
            return match.group()
    return None


def _there(question: str, there: re.Match[str], previous: Turn) -> str | None:
    """ "who influenced him there?" after "where did Tesla go to school?" → Karlovac: the question
    with the place put in for its locative `there`; None when the last question asked for no place."""
    asked = _core(previous.question or "").split()[:1]
    if asked != ["where"] or not previous.short:
        return None
    before = question[: there.start()].split()[-1:]
    going = bool(before) and bool(set(_lemmas(before[0].lower()).get("VERB", ())) & _MOTION)
    preposition = "to" if going else "in"
    return f"{question[: there.start()]}{preposition} {_head(previous.short)}{question[there.end() :]}"


def _locative(question: str) -> re.Match[str] | None:
    """The "there" of "what did he do there?", which stands for a place; not the "there" of "was
    there …" or "there were …"."""
    tokens = list(_WORD.finditer(question))
    for position, match in enumerate(tokens):
        if match.group().lower() != "there":
            continue
        before = tokens[position - 1].group().lower() if position else ""
        after = tokens[position + 1].group().lower() if position + 1 < len(tokens) else ""
        if position and before not in _AUX and after not in _AUX:
            return match
    return None


def _negated(question: str) -> str:
    """ "Why did Gasparian attend the meeting?" → "Why did Gasparian not attend the meeting?": "not"
    before the first verb after the auxiliary."""
    tokens = list(_WORD.finditer(question))
    words = [match.group() for match in tokens]
    if len(words) < 4 or words[1].lower() not in _AUX:
        return question
    for at in range(3, len(words)):
        if _can_be_verb(words[at]):
            return f"{question[: tokens[at].start()]}not {question[tokens[at].start() :]}"
    return question


def _declarative(previous: Turn) -> str | None:
    """The last question said as a statement, for what "it" stands for in "who announced it?":
    "why was the bridge closed?" → "the bridge was closed"; "who was fired?" (Onik Gasparian) →
    "Onik Gasparian was fired". None when it is asked otherwise."""
    words = (previous.question or "").rstrip(" ?!.").split()
    if len(words) < 3 or words[0].lower() not in _WH:
        return None
    asked, aux = words[0].lower(), words[1].lower()
    if asked in {"who", "what"} and previous.short and (aux not in _AUX or _verb_follows(words, 1)):
        return " ".join([_head(previous.short), *words[1:]])  # the answer was the subject
    if asked not in _ADJUNCT_WH or aux not in _BE:
        return None
    # After "was" the verb is a participle: "closed", not the "bridge" of "the bridge".
    verb = next((i for i in range(3, len(words)) if _can_be_verb(words[i]) and _base_form(words[i])), None)
    if verb is None:
        return None  # "why is he famous?": no verb to put the subject before
    return " ".join([*words[2:verb], words[1], *words[verb:]])


def _head(answer: str) -> str:
    """An answer cut to the phrase that names it: "a letter accusing Pashinian of …" → "a letter"."""
    kept: list[str] = []
    for word in answer.strip(" .,;:").split():
        bare = word.rstrip(",;:")
        # A capitalised word goes on a name, whatever else it could be ("Bruno Mars": not "mar").
        verb = not bare[:1].isupper() and set(_lemmas(bare.lower())) == {"VERB"}
        if kept and (bare.lower() in _PHRASE_ENDS or verb or len(kept) == 6):
            break
        kept.append(bare)
        if bare != word:
            break  # "Tiran Khachatrian, the first deputy chief": the name ends at the comma
    if kept and kept[0] in ("The", "A", "An"):
        kept[0] = kept[0].lower()  # it opened the answer's sentence; in a question it does not
    return " ".join(kept)


def _things(question: str, pronoun: str) -> list[str]:
    """What "it" or "they" may mean in a question: its names, then its "the …" phrases, those in the
    plural first for "they"."""
    names = [f"the {name}" if f"the {name}" in question else name for name in _names(question)]
    # "Tesla's motor" before "Tesla": for "it", what a name owns is a thing; the name may be a person.
    owned = (
        re.findall(r"\b(?:[A-Z][\w-]* )*[A-Z][\w-]*['’]s [a-z][\w-]*", question) if pronoun in _NEUTER else []
    )
    phrases = owned + names + re.findall(r"\b(?:the|a|an|its|their) [a-z][\w-]*(?: [a-z][\w-]*)?", question)
    phrases = [" ".join(p.split()[:-1]) if not _noun_like(p.split()[-1], False) else p for p in phrases]
    phrases = [p for p in phrases if len(p.split()) > 1 or p[:1].isupper()]
    if pronoun in _PLURAL:
        phrases.sort(key=lambda phrase: not phrase.endswith("s"))
    return phrases


def _without_title(name: str) -> str:
    """ "President Armen Sarkisian" → "Armen Sarkisian": "what is his title?" then asks about the
    person, not about words the question already holds. Only when a proper name is left."""
    words = name.split()
    for cut in range(1, len(words)):
        rest = words[cut:]
        if _lemmas(words[cut - 1].lower()) and all(not _lemmas(w.lower()) for w in rest):
            return " ".join(rest)
        if not _lemmas(words[cut - 1].lower()):
            break
    return name


def _possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"
