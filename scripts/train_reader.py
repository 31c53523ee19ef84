"""Train the answer reader from all-MiniLM-L6-v2 on the SQuAD v1.1 training set.

The reader reads `[CLS] question [SEP] passage [SEP]` (bot/reader_format.py) and gives
  (a) the probability that the passage answers the question (a head on [CLS]), and
  (b) where the short answer starts and ends in the passage (a head on every token).

Passages are cut exactly as the index cuts articles (index.split, 4 sentences / 120 words, stride 2),
so the reader trains on what it will read. Examples, from the training set only:
  answers      the question with a passage that holds its answer span;
  hard "no"    the question with the passage of its own article that BM25 ranks highest among those
               that do not contain the answer text (what the retriever puts next to the right one);
  altered "no" the question with a name or number swapped for another from the same article that its
               own passage does not contain (SQuAD 2.0's commonest unanswerable kind), with its passage;
  word "no"    the question with a word its passage holds swapped for another word of the article
               that the passage lacks ("Which river …" -> "Which bridge …": it asks about something
               the passage does not say; SQuAD 2.0's "mutual exclusion" and "other" kinds);
  antonym "no" the question with a word turned into its opposite ("first" -> "last", "largest" ->
               "smallest") that its passage does not hold, with its passage (SQuAD 2.0's second kind);
  negated "no" the question negated on its first verb ("Who was X" -> "Who was not X", "What did X
               build" -> "What didn't X build"), with its passage when the passage holds no negation;
  far "no"     the question with a random passage of another article.
Questions are lightly garbled in a share of examples (a dropped or swapped letter, doubled "?") so
that a typo does not turn a clear question into "not in the article".

The word embeddings stay frozen: the shipped file leaves them out and the bot takes them from the
installed base model, which keeps the weights file under 25 MB in fp16.

    python scripts/train_reader.py --data-dir ../shared/data/squad                 # ~90 min on 2 CPU cores
    python scripts/train_reader.py --data-dir ../shared/data/squad --device cuda   # the same run on a GPU

--init-from PATH starts from an earlier run's weights: its checkpoint.pt, or an exported reader
folder such as bot/models/reader (a further pass; with --exclude EXAMPLES, the questions a run saw
are drawn last, so the next pass reads new questions first).

--group-size N reads each question with N passages of its article side by side (those holding its
answer and those BM25 ranks next that do not) and adds a ranking loss on [CLS] across them, as the
answer function chooses among the retriever's best passages; --altered-share of the groups ask an
altered question instead, read with its own passage, which no longer answers it. (Tried twice from
the shipped weights: the answer sentence rose, abstention did not; the model card has the figures.)
With --group-ranks span the ranking loss is on the span scores instead, one softmax over all the
group's passage tokens (shared normalisation), and [CLS] learns from its pointwise loss alone: the
answer function chooses by span score too (bot/answer.py, choice_scores).

--data-dir (or $ARTICLEBOT_SQUAD_DIR) is the folder holding train-v1.1.json, dev-v1.1.json and
dev-v2.0.json.

It writes checkpoints to --work-dir (resumed from automatically), prints dev metrics at the end
(SQuAD dev sets: measured, never trained or tuned on), and exports bot/models/reader/.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.reader import WORD_EMBEDDINGS, best_span  # noqa: E402
from bot.reader_format import MAX_ANSWER_TOKENS, PairEncoding, encode_pairs, load_tokenizer  # noqa: E402
from index.articles import Article  # noqa: E402
from index.embed import model_path, quiet_model_loading  # noqa: E402
from index.lexical import QUESTION_WORDS, STOPWORDS  # noqa: E402
from index.split import Passage, split_article  # noqa: E402

DATA_ENV = "ARTICLEBOT_SQUAD_DIR"
DATA_FILES = ("train-v1.1.json", "dev-v1.1.json", "dev-v2.0.json")
OUTPUT = ROOT / "bot" / "models" / "reader"

# Share of each kind of example; the rest are answers.
SHARES = {"hard": 0.15, "altered": 0.12, "word": 0.08, "antonym": 0.08, "negated": 0.06, "far": 0.03}
GARBLE_SHARE = 0.15
# Of --group-size's groups by default: as many as the pointwise mix's question-changing kinds.
ALTERED_SHARE = round(sum(share for kind, share in SHARES.items() if kind not in ("hard", "far")), 2)

_NAME = re.compile(r"(?<![\w'’])(?:[A-Z][\w'’.-]*)(?:\s+(?:of\s+|de\s+|the\s+)?[A-Z][\w'’.-]*)*")
_NUMBER = re.compile(r"(?<![\w.])\d[\d,.]*\d|(?<![\w.])\d(?![\w])")
_QUESTION_OPENERS = {
    "what", "who", "whom", "whose", "when", "where", "which", "why", "how", "in", "on", "at", "the",
    "a", "an", "by", "for", "from", "during", "after", "before", "to", "of", "is", "was", "are", "were",
    "did", "do", "does", "according", "along", "with", "about", "as", "if", "under", "besides",
}  # fmt: skip


_OPPOSITES = dict(
    pair
    for a, b in (
        ("first", "last"), ("largest", "smallest"), ("biggest", "smallest"), ("highest", "lowest"),
        ("most", "least"), ("before", "after"), ("earliest", "latest"), ("oldest", "youngest"),
        ("older", "younger"), ("longest", "shortest"), ("longer", "shorter"), ("best", "worst"),
        ("more", "less"), ("increase", "decrease"), ("increased", "decreased"), ("rise", "fall"),
        ("won", "lost"), ("win", "lose"), ("north", "south"), ("east", "west"), ("northern", "southern"),
        ("eastern", "western"), ("maximum", "minimum"), ("above", "below"), ("inside", "outside"),
        ("major", "minor"), ("public", "private"), ("success", "failure"), ("positive", "negative"),
        ("higher", "lower"), ("larger", "smaller"), ("bigger", "smaller"), ("greatest", "least"),
        ("start", "end"), ("began", "ended"), ("open", "closed"), ("opened", "closed"),
        ("allowed", "banned"), ("supported", "opposed"), ("accepted", "rejected"), ("gained", "lost"),
        ("entered", "left"), ("arrived", "departed"), ("born", "died"), ("early", "late"),
        ("common", "rare"), ("popular", "unpopular"), ("legal", "illegal"), ("strong", "weak"),
        ("fastest", "slowest"), ("cheapest", "most expensive"), ("richest", "poorest"),
        ("ancient", "modern"), ("oldest", "newest"), ("deep", "shallow"), ("deepest", "shallowest"),
        ("wide", "narrow"), ("widest", "narrowest"), ("heavy", "light"), ("heaviest", "lightest"),
        ("hot", "cold"), ("hottest", "coldest"), ("warm", "cool"), ("warmest", "coolest"), ("wet", "dry"),
        ("wettest", "driest"), ("rich", "poor"), ("male", "female"), ("men", "women"), ("man", "woman"),
        ("husband", "wife"), ("father", "mother"), ("son", "daughter"), ("sons", "daughters"),
        ("brother", "sister"), ("king", "queen"), ("boys", "girls"), ("top", "bottom"),
        ("internal", "external"), ("imports", "exports"), ("imported", "exported"), ("buy", "sell"),
        ("bought", "sold"), ("attacked", "defended"), ("victory", "defeat"), ("war", "peace"),
        ("allies", "enemies"), ("same", "different"), ("true", "false"), ("possible", "impossible"),
        ("able", "unable"), ("included", "excluded"), ("rural", "urban"), ("domestic", "foreign"),
        ("minority", "majority"), ("summer", "winter"), ("spring", "autumn"), ("morning", "evening"),
        ("day", "night"), ("birth", "death"), ("created", "destroyed"), ("founded", "dissolved"),
        ("joined", "quit"), ("appointed", "dismissed"), ("hired", "fired"), ("agreed", "refused"),
        ("approved", "vetoed"), ("wins", "losses"), ("profit", "loss"), ("faster", "slower"),
        ("northernmost", "southernmost"), ("easternmost", "westernmost"), ("easiest", "hardest"),
        ("easier", "harder"), ("simple", "complex"), ("safe", "dangerous"), ("input", "output"),
        ("upstream", "downstream"), ("entrance", "exit"), ("beginning", "ending"),
        ("predecessor", "successor"), ("teacher", "student"), ("winner", "loser"), ("guilty", "innocent"),
        ("permitted", "prohibited"), ("supporters", "opponents"), ("increasing", "decreasing"),
        ("rose", "fell"), ("inner", "outer"), ("native", "foreign"),
        ("primary", "secondary"), ("official", "unofficial"), ("direct", "indirect"),
    )
    for pair in ((a, b), (b, a))
)  # fmt: skip
_OPPOSITE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _OPPOSITES), key=len, reverse=True)) + r")\b")
# "Who was …" / "What did …": the verb that "not" or "n't" attaches to, after the wh-word.
_AUXILIARY = re.compile(
    r"^(\w+(?: \w+)?) (is|was|are|were|did|does|do|can|could|will|would|has|have|had|should) "
)
_IRREGULAR_NEGATIONS = {"can": "can't", "will": "won't"}  # the others add "n't"
_NEGATION = re.compile(r"\b(?:not|never|no|none|nor|without)\b|n't\b", re.IGNORECASE)
_WH = ("what", "who", "whom", "whose", "when", "where", "which", "why", "how")
# Words too plain to change what a question asks when swapped (function words, question verbs).
_PLAIN_WORDS = STOPWORDS | QUESTION_WORDS | {
    "about", "also", "been", "being", "from", "many", "more", "most", "much", "only", "other", "over",
    "some", "than", "them", "while", "year", "years", "time", "first", "last", "after", "before",
    "during",
}  # fmt: skip


@dataclass
class Example:
    question: str
    passage: str
    answer: tuple[int, int] | None  # character span in the passage, None for "not here"
    kind: str
    group: int = -1  # examples with one group number are one question's candidates (--group-size)


def load_articles(path: Path) -> list[tuple[Article, list[Passage], list[dict]]]:
    """Each training article as the index would cut it, with its questions placed in the text."""
    raw = json.loads(path.read_text(encoding="utf-8"))["data"]
    articles = []
    for number, entry in enumerate(raw):
        parts, questions, position = [], [], 0
        for paragraph in entry["paragraphs"]:
            context = paragraph["context"].strip()
            shift = paragraph["context"].index(context[:20]) if context else 0
            for qa in paragraph["qas"]:
                answer = qa["answers"][0]
                start = position + answer["answer_start"] - shift
                questions.append(
                    {"question": qa["question"], "start": start, "end": start + len(answer["text"])}
                )
            parts.append(context)
            position += len(context) + 2
        text = "\n\n".join(parts)
        article = Article(id=f"train-{number}", path="", title=entry["title"], text=text)
        _, passages = split_article(article)
        articles.append((article, passages, questions))
    return articles


def build_examples(
    articles: list[tuple[Article, list[Passage], list[dict]]],
    count: int,
    rng: random.Random,
    seen: frozenset[str] = frozenset(),
) -> list[Example]:
    """`count` examples in the shares above; questions in `seen` (an earlier run's) come last."""
    pool = [(a, i) for a, (_, _, questions) in enumerate(articles) for i in range(len(questions))]
    rng.shuffle(pool)
    pool.sort(key=lambda entry: articles[entry[0]][2][entry[1]]["question"] in seen)  # stable: order kept
    wanted = {kind: int(count * share) for kind, share in SHARES.items()}
    wanted["answer"] = count - sum(wanted.values())
    made = dict.fromkeys(wanted, 0)
    changes = _question_changes()
    retrievers: dict[int, object] = {}
    examples: list[Example] = []
    for a, i in pool:
        if all(made[k] >= wanted[k] for k in wanted):
            break
        article, passages, questions = articles[a]
        qa = questions[i]
        answer_text = article.text[qa["start"] : qa["end"]]
        holding = [p for p in passages if p.start <= qa["start"] and qa["end"] <= p.end]
        if not holding or not answer_text.strip():
            continue
        gold = rng.choice(holding)
        kind = _next_kind(made, wanted, rng)
        question = _garble(qa["question"], rng) if rng.random() < GARBLE_SHARE else qa["question"]
        if kind == "answer":
            span = (qa["start"] - gold.start, qa["end"] - gold.start)
            examples.append(Example(question, gold.text, span, kind))
        elif kind == "hard":
            others = _ranked_without(retrievers, a, passages, qa["question"], answer_text, 6)
            if not others:
                continue
            examples.append(Example(question, others[0 if rng.random() < 0.7 else -1].text, None, kind))
        elif kind in changes:
            altered = changes[kind](qa["question"], article.text, gold.text, rng)
            if altered is None:
                continue
            examples.append(Example(altered, gold.text, None, kind))
        else:
            other = rng.randrange(len(articles))
            if other == a:
                continue
            examples.append(Example(question, rng.choice(articles[other][1]).text, None, kind))
        made[kind] += 1
    print(f"examples: {made}", file=sys.stderr)
    rng.shuffle(examples)
    return examples


def build_groups(
    articles: list[tuple[Article, list[Passage], list[dict]]],
    count: int,
    size: int,
    rng: random.Random,
    altered_share: float = ALTERED_SHARE,
) -> list[Example]:
    """About `count` examples in groups of `size`: one question with the passages that hold its
    answer and those BM25 ranks next in its article that do not, read side by side as the answer
    function reads the retriever's best passages. `altered_share` of the groups ask an altered
    question (SHARES' kinds of "not here"), read with its own passage alone: beside it, passages
    that did not answer the question before it was altered would only add easy "no"s and tip the
    balance of answers."""
    pool = [(a, i) for a, (_, _, questions) in enumerate(articles) for i in range(len(questions))]
    rng.shuffle(pool)
    changes = _question_changes()
    retrievers: dict[int, object] = {}
    examples: list[Example] = []
    made: dict[str, int] = {}
    for a, i in pool:
        if len(examples) >= count:
            break
        article, passages, questions = articles[a]
        qa = questions[i]
        answer_text = article.text[qa["start"] : qa["end"]]
        holding = [p for p in passages if p.start <= qa["start"] and qa["end"] <= p.end]
        if not holding or not answer_text.strip() or len(passages) < size:
            continue
        question = _garble(qa["question"], rng) if rng.random() < GARBLE_SHARE else qa["question"]
        group = sum(made.values())
        if sum(made.get(kind, 0) for kind in changes) < altered_share * (group + 1):  # else the next one
            kind = rng.choices(list(changes), weights=[SHARES[k] for k in changes])[0]
            gold = rng.choice(holding)
            altered = changes[kind](qa["question"], article.text, gold.text, rng)
            if altered is None:
                continue
            members = [Example(altered, gold.text, None, kind, group)]
        else:
            kind = "answer"
            others = _ranked_without(retrievers, a, passages, qa["question"], answer_text, len(passages))
            chosen = rng.sample(holding, min(2, len(holding)))
            members = [
                Example(question, p.text, (qa["start"] - p.start, qa["end"] - p.start), kind, group)
                for p in chosen
            ]
            members += [Example(question, p.text, None, "hard", group) for p in others[: size - len(chosen)]]
        made[kind] = made.get(kind, 0) + 1
        rng.shuffle(members)
        examples.extend(members)
    print(f"groups: {made}", file=sys.stderr)
    return examples


def _question_changes() -> dict[str, Callable[[str, str, str, random.Random], str | None]]:
    """The rules that make a question its own passage no longer answers, by example kind."""
    return {"altered": _alter, "word": _swap_word, "antonym": _oppose, "negated": _negate}


def _ranked_without(
    retrievers: dict[int, object], a: int, passages: list[Passage], question: str, answer: str, k: int
) -> list[Passage]:
    """Article a's passages BM25 ranks best for the question (of its k best) that lack the answer text;
    each article's BM25 index is built once, in `retrievers`."""
    import bm25s

    if a not in retrievers:
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize([p.text for p in passages], show_progress=False), show_progress=False)
        retrievers[a] = retriever
    ranked, _ = retrievers[a].retrieve(  # type: ignore[attr-defined]
        bm25s.tokenize([question], show_progress=False), k=min(k, len(passages)), show_progress=False
    )
    lowered = answer.lower()
    return [passages[j] for j in ranked[0] if lowered not in passages[j].text.lower()]


def _next_kind(made: dict[str, int], wanted: dict[str, int], rng: random.Random) -> str:
    open_kinds = [k for k in wanted if made[k] < wanted[k]]
    weights = [wanted[k] - made[k] for k in open_kinds]
    return rng.choices(open_kinds, weights=weights)[0]


def _alter(question: str, article_text: str, passage: str, rng: random.Random) -> str | None:
    """The question with one name or number swapped for another of its article that the passage
    lacks, so the passage no longer answers it."""
    spots = [
        m
        for m in _NAME.finditer(question)
        if not (m.start() == 0 and m.group().split()[0].lower() in _QUESTION_OPENERS)
    ]
    spots += list(_NUMBER.finditer(question))
    rng.shuffle(spots)
    lowered_passage = passage.lower()
    for spot in spots:
        is_number = spot.group()[0].isdigit()
        if is_number:
            digits = spot.group().replace(",", "")
            try:
                value = float(digits)
            except ValueError:
                continue
            candidates = list(_article_numbers(article_text))
            if value.is_integer():
                shifted = int(value) + rng.choice([-1, 1]) * rng.randint(1, 40)
                candidates.append(str(shifted))
        else:
            candidates = list(_article_names(article_text))
        candidates = [c for c in set(candidates) if c != spot.group() and c.lower() not in lowered_passage]
        if candidates:
            swap = rng.choice(sorted(candidates))
            return question[: spot.start()] + swap + question[spot.end() :]
    return None


def _swap_word(question: str, article_text: str, passage: str, rng: random.Random) -> str | None:
    """The question with a word its passage holds swapped for another word of the article, of the
    same ending (a rough part of speech), that the passage lacks: the question now asks about
    something the passage does not say ("Which river …" -> "Which bridge …")."""
    lowered = passage.lower()
    held = set(re.findall(r"[a-z]+", lowered))
    spots = [
        m
        for m in re.finditer(r"(?<![\w'’-])[a-z]{4,}(?![\w'’-])", question)
        if m.group() in held and m.group() not in _PLAIN_WORDS
    ]
    rng.shuffle(spots)
    for spot in spots:
        word = spot.group()
        others = [
            w
            for w in _article_words(article_text)
            if w[-2:] == word[-2:] and w[:4] != word[:4] and w not in held and w not in _PLAIN_WORDS
        ]
        if others:
            return question[: spot.start()] + rng.choice(others) + question[spot.end() :]
    return None


# An article's names, numbers and words, found once for all its questions (the bundle of
# scripts/reader_bundle.py alters every training question several times).
@functools.lru_cache(maxsize=4)
def _article_names(article_text: str) -> tuple[str, ...]:
    return tuple(m.group() for m in _NAME.finditer(article_text) if len(m.group()) > 2)


@functools.lru_cache(maxsize=4)
def _article_numbers(article_text: str) -> tuple[str, ...]:
    return tuple(m.group() for m in _NUMBER.finditer(article_text))


@functools.lru_cache(maxsize=4)
def _article_words(article_text: str) -> tuple[str, ...]:
    return tuple(sorted(set(re.findall(r"(?<![\w'’-])[a-z]{4,}(?![\w'’-])", article_text))))


def _oppose(question: str, article_text: str, passage: str, rng: random.Random) -> str | None:
    """The question with one word turned into its opposite, which the passage does not hold."""
    spots = list(_OPPOSITE.finditer(question))
    rng.shuffle(spots)
    for spot in spots:
        opposite = _OPPOSITES[spot.group()]
        if not re.search(rf"\b{re.escape(opposite)}\b", passage, re.IGNORECASE):
            return question[: spot.start()] + opposite + question[spot.end() :]
    return None


def _negate(question: str, article_text: str, passage: str, rng: random.Random) -> str | None:
    """ "Who was the first king?" -> "Who was not the first king?", "What did X build?" -> "What
    didn't X build?", when the passage negates nothing (only on the verb right after the wh-word,
    where the negation needs no parse to sit in the right place)."""
    match = _AUXILIARY.match(question)
    if not match or match.group(1).split()[0].lower() not in _WH or _NEGATION.search(passage):
        return None
    verb = match.group(2)
    copula = verb in ("is", "was", "are", "were")
    negated = f"{verb} not" if copula and rng.random() < 0.5 else _IRREGULAR_NEGATIONS.get(verb, f"{verb}n't")
    return question[: match.start(2)] + negated + question[match.end(2) :]


def _garble(question: str, rng: random.Random) -> str:
    """A typo in one longer word, or doubled punctuation, or both."""
    words = question.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    if long_words and rng.random() < 0.7:
        i = rng.choice(long_words)
        w = words[i]
        j = rng.randrange(1, len(w) - 1)
        words[i] = w[:j] + w[j + 1 :] if rng.random() < 0.5 else w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    garbled = " ".join(words)
    if rng.random() < 0.4:
        garbled = garbled.rstrip("?") + "??"
    return garbled


def token_span(encoding: PairEncoding, span: tuple[int, int]) -> tuple[int, int] | None:
    """First and last token of a character span in the passage, or None if truncation cut it."""
    start_token = end_token = None
    for index, offset in enumerate(encoding.offsets):
        if offset is None:
            continue
        if start_token is None and offset[1] > span[0]:
            start_token = index
        if offset[0] < span[1]:
            end_token = index
    if start_token is None or end_token is None or end_token < start_token:
        return None
    return start_token, end_token


def make_model(device: str, config: dict | None = None):  # type: ignore[no-untyped-def]
    """The reader in torch: the base model's weights, or with `config` (a BERT configuration) the
    same shape, randomly initialised, for weights loaded afterwards (scripts/reader_bundle.py)."""
    import torch
    from transformers import AutoModel, BertConfig
    from transformers.utils import logging

    logging.set_verbosity_error()  # the base model's unused pooler is reported on every load otherwise

    class Reader(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if config is None:
                self.bert = AutoModel.from_pretrained(str(model_path()), add_pooling_layer=False)
            else:
                self.bert = AutoModel.from_config(BertConfig.from_dict(config), add_pooling_layer=False)
            hidden = self.bert.config.hidden_size
            self.span = torch.nn.Linear(hidden, 2)
            self.answerable = torch.nn.Linear(hidden, 1)

        def forward(self, ids, types, mask):  # type: ignore[no-untyped-def]
            hidden = self.bert(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
            start, end = self.span(hidden).unbind(-1)
            return start, end, self.answerable(hidden[:, 0]).squeeze(-1)

    model = Reader().to(device)
    model.bert.embeddings.word_embeddings.weight.requires_grad = False
    return model


def start_from(model, source: Path, device: str) -> None:  # type: ignore[no-untyped-def]
    """An earlier run's weights: its checkpoint.pt, or an exported reader folder (fp16, without the
    frozen word embeddings, which stay the base model's)."""
    import torch

    if source.is_dir():
        from safetensors.torch import load_file

        weights = {k: v.float() for k, v in load_file(str(source / "model.safetensors"), device).items()}
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if missing != [WORD_EMBEDDINGS] or unexpected:
            raise SystemExit(f"train_reader.py: {source} is not a reader export ({missing + unexpected})")
    else:
        model.load_state_dict(torch.load(source, map_location=device)["model"])


Encoded = list[tuple[PairEncoding, tuple[int, int] | None, int]]  # encoding, token span, group


def batches(encoded: Encoded, size: int, rng: random.Random) -> list[list[int]]:
    """Batches of at most `size` examples (more only where one group is larger) and of similar
    length (sorted within chunks of about 50 batches), in a seeded order; a group's examples stay
    together in one batch."""
    units: dict[int | tuple[int], list[int]] = {}
    for i, (_, _, group) in enumerate(encoded):
        units.setdefault(group if group >= 0 else (i,), []).append(i)
    order = list(units.values())
    chunk = max(1, 50 * size * len(order) // len(encoded))
    out: list[list[int]] = []
    for begin in range(0, len(order), chunk):
        part = sorted(order[begin : begin + chunk], key=lambda unit: max(len(encoded[i][0]) for i in unit))
        batch: list[int] = []
        for unit in part:
            if batch and len(batch) + len(unit) > size:
                out.append(batch)
                batch = []
            batch += unit
        out.append(batch)
    rng.shuffle(out)
    return out


def tensors(rows, encoded, device):  # type: ignore[no-untyped-def]
    import torch

    length = max(len(encoded[i][0]) for i in rows)
    ids = torch.zeros((len(rows), length), dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    passage = torch.zeros((len(rows), length), dtype=torch.bool)
    starts = torch.zeros(len(rows), dtype=torch.long)
    ends = torch.zeros(len(rows), dtype=torch.long)
    labels = torch.zeros(len(rows))
    groups = torch.full((len(rows),), -1, dtype=torch.long)
    for r, i in enumerate(rows):
        encoding, span, groups[r] = encoded[i]
        n = len(encoding)
        ids[r, :n] = torch.tensor(encoding.ids)
        types[r, :n] = torch.tensor(encoding.type_ids)
        mask[r, :n] = 1
        passage[r, :n] = torch.tensor([o is not None for o in encoding.offsets])
        if span is not None:
            starts[r], ends[r] = span
            labels[r] = 1.0
    return [t.to(device) for t in (ids, types, mask, passage, starts, ends, labels, groups)]


def train(args: argparse.Namespace) -> None:
    import torch
    from tqdm import tqdm

    quiet_model_loading()
    torch.manual_seed(args.seed)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    tokenizer = load_tokenizer(model_path())

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    grouped = f"-groups{args.group_size}-altered{args.altered_share:g}" if args.group_size else ""
    cache = work / f"examples-{args.examples}-{args.seed}{grouped}.json"
    if cache.exists():
        examples = [Example(**e) for e in json.loads(cache.read_text())]
        for e in examples:
            e.answer = tuple(e.answer) if e.answer else None  # type: ignore[assignment]
    else:
        started = time.time()
        articles = load_articles(args.data_dir / "train-v1.1.json")
        print(f"split {len(articles)} training articles in {time.time() - started:.0f} s", file=sys.stderr)
        seen: frozenset[str] = frozenset()
        if args.exclude:
            seen = frozenset(e["question"] for e in json.loads(Path(args.exclude).read_text()))
        if args.group_size:
            examples = build_groups(articles, args.examples, args.group_size, rng, args.altered_share)
        else:
            examples = build_examples(articles, args.examples, rng, seen)
        cache.write_text(json.dumps([e.__dict__ for e in examples]))

    encoded: Encoded = []
    skipped = 0
    for e in examples:
        encoding = encode_pairs(tokenizer, e.question, [e.passage])[0]
        span = token_span(encoding, e.answer) if e.answer else None
        if e.answer and (span is None or span[1] - span[0] >= MAX_ANSWER_TOKENS):
            skipped += 1
            continue
        encoded.append((encoding, span, e.group))
    print(f"{len(encoded)} examples encoded, {skipped} answers cut or too long skipped", file=sys.stderr)

    model = make_model(args.device)
    if args.init_from:
        start_from(model, Path(args.init_from), args.device)
        print(f"starting from {args.init_from}", file=sys.stderr)
    plan = batches(encoded, args.batch_size, random.Random(args.seed + 1))
    steps = len(plan)
    optimizer = optimizer_for(model, args.lr)
    warmup = max(1, int(0.06 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    checkpoint = work / "checkpoint.pt"
    step = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=args.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step = state["step"]
        print(f"resumed from step {step} of {steps}", file=sys.stderr)

    model.train()
    bar = tqdm(total=steps, initial=step, desc="training", unit="batch", mininterval=5)
    running = None
    while step < steps:
        ids, types, mask, passage, starts, ends, labels, groups = tensors(plan[step], encoded, args.device)
        start_logits, end_logits, answerable = model(ids, types, mask)
        loss = pointwise_loss(
            start_logits, end_logits, answerable, passage, starts, ends, labels, args.span_weight
        )
        if args.group_size and args.group_ranks == "span":
            spans = (start_logits, end_logits, passage, starts, ends)
            loss = loss + args.group_weight * shared_span_loss(*spans, labels, groups)
        elif args.group_size:
            loss = loss + args.group_weight * group_loss(answerable, labels, groups)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}", refresh=False)
        if step % args.save_every == 0 or step == steps:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "schedule": schedule.state_dict(), "step": step}  # fmt: skip
            torch.save(state, checkpoint.with_suffix(".tmp"))
            checkpoint.with_suffix(".tmp").replace(checkpoint)
    bar.close()
    model.eval()
    export(model, Path(args.output), run_settings(args))
    dev_metrics(model, tokenizer, dev_sample(args.data_dir, args.seed, args.dev_questions), args.device)


def pointwise_loss(start_logits, end_logits, answerable, passage, starts, ends, labels, span_weight):  # type: ignore[no-untyped-def]
    """BCE on the answerable logit, plus span_weight times the cross-entropy of the gold start and
    end over the passage's tokens, averaged over the examples that hold an answer. Written without a
    branch on the batch's contents, so a GPU step never waits to ask whether it holds an answer."""
    import torch
    import torch.nn.functional as F

    loss = F.binary_cross_entropy_with_logits(answerable, labels)
    blocked = ~passage
    s = F.cross_entropy(start_logits.masked_fill(blocked, -1e4), starts, reduction="none")
    e = F.cross_entropy(end_logits.masked_fill(blocked, -1e4), ends, reduction="none")
    answering = torch.clamp(labels.sum(), min=1.0)
    return loss + span_weight * ((s + e) * labels).sum() / (2 * answering)


def optimizer_for(model, lr: float, fused: bool = False):  # type: ignore[no-untyped-def]
    """AdamW over the trained weights: weight decay 0.01, none on biases and LayerNorm."""
    import torch

    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    plain = [p for n, p in trained if "LayerNorm" in n or "bias" in n]
    decay = [p for n, p in trained if not ("LayerNorm" in n or "bias" in n)]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, fused=fused or None)


def group_loss(logits, labels, groups):  # type: ignore[no-untyped-def]
    """How far each question's [CLS] scores are from putting its answering passages above the
    others of its group: -log of the softmax mass on the passages that answer, over groups with one."""
    import torch

    losses = []
    for group in torch.unique(groups[groups >= 0]):
        members = groups == group
        positive = labels[members] > 0.5
        if positive.any():
            scores = logits[members]
            losses.append(torch.logsumexp(scores, 0) - torch.logsumexp(scores[positive], 0))
    return torch.stack(losses).mean() if losses else logits.sum() * 0.0


def shared_span_loss(start_logits, end_logits, passage, starts, ends, labels, groups):  # type: ignore[no-untyped-def]
    """The gold span's start and end, each by one softmax over every passage token of the
    question's group ("shared normalisation", Clark and Gardner 2018), so that span scores of
    different passages compare; groups without an answering passage add nothing."""
    import torch

    losses = []
    for group in torch.unique(groups[groups >= 0]):
        members = torch.nonzero(groups == group).squeeze(-1)
        answering = members[labels[members] > 0.5]
        if not len(answering):
            continue
        gold = int(answering[0])
        position = int((members == gold).nonzero()) * start_logits.shape[1]
        for logits, target in ((start_logits, starts[gold]), (end_logits, ends[gold])):
            flat = logits[members].masked_fill(~passage[members], -1e4).reshape(-1)
            losses.append(torch.logsumexp(flat, 0) - flat[position + target])
    return torch.stack(losses).mean() if losses else start_logits.sum() * 0.0


def run_settings(args: argparse.Namespace) -> dict:
    """How this script's run was made, for the exported config."""
    return {
        "examples": args.examples,
        "seed": args.seed,
        "init_from": args.init_from and Path(args.init_from).name,
        "group_size": args.group_size,
        "altered_share": args.altered_share if args.group_size else None,
        "group_ranks": args.group_ranks if args.group_size else None,
    }


def export(model, output: Path, settings: dict) -> None:  # type: ignore[no-untyped-def]
    """fp16 safetensors of everything but the frozen word embeddings, and the config to rebuild it
    with `settings` (how the run was made) and the weights' sha256."""
    from safetensors.torch import save_file

    output.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: value.detach().to("cpu").half().contiguous()
        for name, value in model.state_dict().items()
        if name != WORD_EMBEDDINGS
    }
    save_file(tensors, str(output / "model.safetensors"), metadata={"format": "pt"})
    digest = hashlib.sha256((output / "model.safetensors").read_bytes()).hexdigest()
    config = model.bert.config.to_dict()
    reader = {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "shared_from_base": [WORD_EMBEDDINGS],
        **settings,
        "max_answer_tokens": MAX_ANSWER_TOKENS,
        "sha256": digest,
    }
    (output / "config.json").write_text(json.dumps({"bert": config, "reader": reader}, indent=2) + "\n")
    print(f"exported {output / 'model.safetensors'}", file=sys.stderr)


def dev_sample(data_dir: Path, seed: int, count: int) -> list[list[tuple[str, dict]]]:
    """`count` (paragraph, question) pairs of v1.1 dev and of v2.0 dev, drawn by `seed`."""
    rng = random.Random(seed)
    rows = []
    for name in ("dev-v1.1.json", "dev-v2.0.json"):
        data = json.loads((data_dir / name).read_text(encoding="utf-8"))["data"]
        cases = [(p["context"], qa) for article in data for p in article["paragraphs"] for qa in p["qas"]]
        rows.append(rng.sample(cases, min(count, len(cases))))
    return rows


def dev_metrics(model, tokenizer, rows: list[list[tuple[str, dict]]], device: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Span exact match / F1 with the gold passage (v1.1 dev) and answerable-vs-not AUROC with the
    passage of the question's own paragraph (v2.0 dev), on `rows` from dev_sample: a check of the
    run, not the product's eval."""
    import torch

    from bot.evaluation.metrics import exact_match, token_f1

    exact = f1 = 0.0
    scores, truth = [], []
    with torch.no_grad():
        for dataset, cases in zip(("v1.1", "v2.0"), rows, strict=True):
            for context, qa in cases:
                encoding = encode_pairs(tokenizer, qa["question"], [context])[0]
                ids = torch.tensor([encoding.ids], device=device)
                types = torch.tensor([encoding.type_ids], device=device)
                mask = torch.ones_like(ids)
                start, end, answerable = (t[0].cpu().numpy() for t in model(ids, types, mask))
                if dataset == "v2.0":
                    scores.append(float(answerable))
                    truth.append(0 if qa.get("is_impossible") else 1)
                    continue
                i, j = best_span(start, end, encoding)
                text = context[encoding.offsets[i][0] : encoding.offsets[j][1]]  # type: ignore[index]
                golds = [a["text"] for a in qa["answers"]]
                exact += exact_match(text, golds)
                f1 += token_f1(text, golds)
    n = max(1, len(rows[0]))
    figures = {"v1.1_exact": exact / n, "v1.1_f1": f1 / n, "v2.0_auroc": auroc(scores, truth)}
    print(f"dev v1.1 (gold paragraph, {len(rows[0])} questions): exact {exact / n:.3f}, F1 {f1 / n:.3f}")
    print(f"dev v2.0 (own paragraph, {len(scores)} questions): answerable AUROC {figures['v2.0_auroc']:.3f}")
    return figures


def auroc(scores: list[float], truth: list[int]) -> float:
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    positives = np.array(truth) == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    if not n_pos or not n_neg:
        return math.nan
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def data_dir_problem(data_dir: Path | None) -> str | None:
    """Why the SQuAD folder cannot be used, in one line; None when it holds every file."""
    fix = f"pass --data-dir PATH (e.g. ../shared/data/squad) holding {', '.join(DATA_FILES)}"
    if data_dir is None:
        return f"training needs SQuAD v1.1 train and the v1.1 and v2.0 dev sets: {fix}"
    missing = [name for name in DATA_FILES if not (data_dir / name).is_file()]
    if missing:
        return f"no {', '.join(missing)} in {data_dir} (--data-dir or ${DATA_ENV}): {fix}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get(DATA_ENV) or None,
        metavar="PATH",
        help=f"folder with the SQuAD JSON files (default ${DATA_ENV})",
    )
    parser.add_argument("--examples", type=int, default=40000, help="training examples, one epoch")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--span-weight", type=float, default=1.0)
    parser.add_argument(
        "--group-size",
        type=int,
        default=0,
        help="read each question with this many passages of its article side by side (0: one at a time)",
    )
    parser.add_argument(
        "--altered-share",
        type=float,
        default=ALTERED_SHARE,
        help="share of groups that ask an altered question, read with its own passage alone",
    )
    parser.add_argument("--group-weight", type=float, default=1.0, help="weight of the group ranking loss")
    parser.add_argument(
        "--group-ranks",
        choices=("cls", "span"),
        default="cls",
        help="what the group loss ranks: the answerable logit, or the span scores by one softmax "
        "over the group's passages (the logit then learns from its pointwise loss alone)",
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--save-every", type=int, default=200, help="batches between checkpoints")
    parser.add_argument("--dev-questions", type=int, default=600)
    parser.add_argument("--work-dir", default=str(ROOT / ".reader-train"))
    parser.add_argument(
        "--init-from", metavar="PATH", help="an earlier run's checkpoint.pt, or an exported reader folder"
    )
    parser.add_argument("--exclude", metavar="EXAMPLES", help="examples-*.json of an earlier run")
    parser.add_argument("--output", default=str(OUTPUT))
    args = parser.parse_args()
    if problem := data_dir_problem(args.data_dir):
        print(f"train_reader.py: {problem}", file=sys.stderr)
        raise SystemExit(2)
    train(args)


if __name__ == "__main__":
    main()
