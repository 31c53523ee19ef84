"""Fit the abstention model on SQuAD v2.0 and write bot/abstain.json.

    .venv/bin/python scripts/fit_abstention.py ../shared/data/squad/dev-v2.0.json [--cache-dir DIR]

The bot is asked every question in the per-article setting with its shipped retrieval and
sentence scoring; the features of each answer (see `bot.answer.abstention_features`) and whether
the question is answerable train a logistic regression (scikit-learn, a dev dependency only).
Cross-validation is grouped by article, so no article's questions are both trained and scored:
the printed AUROC and the threshold come from out-of-fold predictions only. The threshold is the
highest that keeps at least `--keep` of answerable questions answered out of fold. The shipped
model is then fitted on every article.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.abstain import MODEL_PATH
from bot.answer import AnswerSettings
from bot.evaluation import harness
from bot.evaluation.metrics import auroc
from bot.evaluation.squad import load_squad
from index.embed import Embedder, SentenceTransformerEmbedder
from index.split import SplitSettings

# Kept: the features whose weights keep a sensible sign and that carry over from SQuAD to news
# (off-topic questions on the bundled article score far below on-topic ones). Adding the passage-
# level "missing" counts raises the cross-validated AUROC by .005 but flips signs between folds.
FEATURES = (
    "top_dense",
    "top_lexical",
    "dense_gap",
    "sentence_cosine",
    "sentence_overlap",
    "sentence_exact",
    "sentence_type",
    "asks_type",
    "question_terms",
    "negated",
    "missing_idf",
    "names_missing",
    "numbers_missing",
    "sentence_score",
    "question_words",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--cache-dir", type=Path, help="embedding cache shared with 'articlebot eval'")
    parser.add_argument("--keep", type=float, default=0.99, help="share of answerable questions to answer")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=MODEL_PATH)
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    squad = load_squad(args.file)
    embedder: Embedder = SentenceTransformerEmbedder("cpu")
    if args.cache_dir:
        embedder = harness.CachingEmbedder(embedder, args.cache_dir)
    corpus = harness.prepare(squad, embedder, SplitSettings())
    questions = harness.select_questions(squad, None)
    asked = [q for group in questions for q in group]
    vectors = dict(zip([q.id for q in asked], embedder.encode([q.text for q in asked]), strict=True))
    outcomes = harness.run_setting("per-article", corpus, questions, vectors, AnswerSettings())
    groups = np.array([row for row, group in enumerate(questions) for _ in group])
    x = np.array([[o.features[name] for name in FEATURES] for o in outcomes], dtype=np.float64)
    y = np.array([o.question.answerable for o in outcomes], dtype=bool)
    print(f"{len(y):,} questions ({y.mean():.1%} answerable) from {len(squad)} articles", file=sys.stderr)

    out_of_fold = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=args.folds).split(x, y, groups):
        scaler = StandardScaler().fit(x[train])
        model = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(x[train]), y[train])
        out_of_fold[test] = model.predict_proba(scaler.transform(x[test]))[:, 1]
    threshold = float(np.quantile(out_of_fold[y], 1 - args.keep))
    answered = out_of_fold >= threshold
    cv = {
        "auroc": round(auroc(out_of_fold, y), 4),
        "threshold": round(threshold, 4),
        "recall": round(float(answered[y].mean()), 4),
        "precision": round(float(y[answered].mean()), 4),
        "accuracy": round(float((answered == y).mean()), 4),
    }
    for name in FEATURES:
        column = x[:, FEATURES.index(name)]
        print(f"  {name:16s} alone: AUROC {auroc(column, y):.3f}", file=sys.stderr)

    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(x), y)
    shipped = {
        "about": "P(answerable) from answer features; fitted by scripts/fit_abstention.py",
        "fitted_on": f"{args.file.name}, per-article setting, {len(y)} questions, {len(squad)} articles",
        "cross_validation": {"folds": args.folds, "grouped_by": "article", **cv},
        "features": list(FEATURES),
        "mean": [round(float(v), 6) for v in scaler.mean_],
        "scale": [round(float(v), 6) for v in scaler.scale_],
        "coef": [round(float(v), 6) for v in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 6),
        "threshold": round(threshold, 4),
    }
    args.output.write_text(json.dumps(shipped, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(cv))
    print(f"wrote {args.output} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
