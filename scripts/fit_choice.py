"""Fit how the reader chooses the passage it answers from, on SQuAD v1.1 training articles.

`choice_scores` in bot/answer.py adds to the reader's answerable logit SPAN_WEIGHT times the score
of the short answer it found and SEARCH_WEIGHT times the search's (standardised) score for the
passage. This script asks questions of training articles as `articlebot eval --setting
per-article --mode hybrid --reader on` asks the dev sets, reads each question's passages once,
and prints the answer-sentence accuracy of every pair of weights on a grid. The dev sets are never
used here; they measure the result.

    python scripts/fit_choice.py ../shared/data/squad/train-v1.1.json --articles 400:442 \\
        --sample 2000 --cache-dir ~/.cache/articlebot/eval

It then prints, for each probability on a grid, what the cascade (`CASCADE_STOP`: stop after the
best passage when the reader is at least that sure of it) would cost: the share of questions that
stop early and the answer-sentence accuracy beside reading all five.

The training set's last 42 articles by default. The shipped reader was trained on questions drawn
from every training article, so some of these it has seen: its logit is, if anything, favoured.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.answer import (  # noqa: E402
    CANDIDATE_PASSAGES,
    CASCADE_STOP,
    SEARCH_WEIGHT,
    SPAN_WEIGHT,
    choice_scores,
    read_choice,
    search_hits,
)
from bot.config import Config  # noqa: E402
from bot.reader import Reader, Reading  # noqa: E402
from index.errors import ArticlebotError  # noqa: E402
from index.store import Hit  # noqa: E402

SPAN_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)
SEARCH_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
STOP_GRID = (0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)


@dataclass(frozen=True)
class Read:
    """One question's read passages, and which of them would give a right answer sentence."""

    readings: list[Reading]
    hits: list[Hit]
    correct: np.ndarray


def read_questions(file: Path, articles: slice, sample: int, cache_dir: Path | None) -> list[Read]:
    from bot.evaluation import harness
    from bot.evaluation.metrics import contains_answer
    from bot.evaluation.squad import load_squad
    from index.embed import Embedder, SentenceTransformerEmbedder

    config = Config()
    squad = load_squad(file)[articles]
    embedder: Embedder = SentenceTransformerEmbedder("cpu")
    if cache_dir is not None:
        embedder = harness.CachingEmbedder(embedder, cache_dir)
    questions = harness.select_questions(squad, None, sample)
    corpus = harness.prepare(squad, embedder, config.passages)
    asked = [q for group in questions for q in group if q.answerable]
    vectors = dict(zip([q.id for q in asked], embedder.encode([q.text for q in asked]), strict=True))
    reader = Reader().load()
    reads = []
    for row, group in enumerate(questions):
        index = corpus.index_of([row])
        for question in (q for q in group if q.answerable):
            hits = search_hits(question.text, vectors[question.id], index, config.search)
            hits = hits[:CANDIDATE_PASSAGES]
            if not hits:
                continue
            readings = reader.read(question.text, [hit.passage.text for hit in hits])
            correct = np.array(
                [
                    contains_answer(read_choice(hit, reading, index).sentence.text, question.answers)
                    for hit, reading in zip(hits, readings, strict=True)
                ]
            )
            reads.append(Read(readings, hits, correct))
        print(f"\r{len(reads)} of {len(asked)} questions read", end="", file=sys.stderr)
    print(file=sys.stderr)
    return reads


def accuracy(reads: list[Read], span_weight: float, search_weight: float) -> float:
    """Share of questions whose chosen passage gives a right answer sentence."""
    chosen = [
        r.correct[int(np.argmax(choice_scores(r.readings, r.hits, span_weight, search_weight)))]
        for r in reads
    ]
    return float(np.mean(chosen))


def cascade(reads: list[Read], stop: float) -> tuple[float, float]:
    """(share of questions that stop after the best passage, answer-sentence accuracy) when the
    reader stops there at probability `stop` or above, and otherwise chooses as `accuracy` does."""
    stopped = np.array([r.readings[0].probability >= stop for r in reads])
    full = [r.correct[int(np.argmax(choice_scores(r.readings, r.hits)))] for r in reads]
    right = np.where(stopped, [bool(r.correct[0]) for r in reads], full)
    return float(np.mean(stopped)), float(np.mean(right))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="SQuAD v1.1 training set (train-v1.1.json)")
    parser.add_argument("--articles", default="400:442", help="which articles, as start:stop")
    parser.add_argument("--sample", type=int, default=2000, help="questions, spread over the articles")
    parser.add_argument("--cache-dir", type=Path, help="reuse passage and question vectors here")
    args = parser.parse_args()
    if args.file.name.startswith("dev"):
        raise SystemExit("fit_choice.py: fit on the training set; the dev sets only measure")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        start, stop = (int(part) for part in args.articles.split(":"))
    except ValueError:
        raise SystemExit(f"fit_choice.py: --articles {args.articles!r}: give start:stop") from None
    try:
        reads = read_questions(args.file, slice(start, stop), args.sample, args.cache_dir)
    except ArticlebotError as error:
        raise SystemExit(f"fit_choice.py: {error}") from None
    if not reads:
        raise SystemExit(f"fit_choice.py: no answerable questions in articles {args.articles}")
    grid = sorted(
        ((accuracy(reads, span, search), span, search) for span in SPAN_GRID for search in SEARCH_GRID),
        reverse=True,
    )
    print(f"{len(reads)} answerable questions of articles {args.articles}; answer sentence right:")
    rows = [("logit alone", 0.0, 0.0), ("shipped", SPAN_WEIGHT, SEARCH_WEIGHT)]
    rows += [("", span, search) for _, span, search in grid[:8]]
    print(f"  {'':12}{'span':>6}{'search':>8}{'right':>8}")
    for name, span, search in rows:
        print(f"  {name:12}{span:>6}{search:>8}{accuracy(reads, span, search):>8.3f}")
    print("the cascade: stopping after the best passage when its probability is at least")
    print(f"  {'stop':>6}{'stopped':>9}{'right':>8}")
    for stop in sorted({*STOP_GRID, CASCADE_STOP} - {None}):
        stopped, right = cascade(reads, stop)
        print(f"  {stop:>6}{stopped:>9.3f}{right:>8.3f}" + ("  (shipped)" if stop == CASCADE_STOP else ""))


if __name__ == "__main__":
    main()
