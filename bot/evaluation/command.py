"""`articlebot eval FILE`: passage hit@k, MRR, answer sentence, short answer and abstention on SQuAD,
with and without the reader."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index.store import SEARCH_MODES

if TYPE_CHECKING:
    from bot.config import Config
    from bot.evaluation.harness import Result

SETTING_CHOICES = ("per-article", "pooled")
MODE_CHOICES = SEARCH_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        metavar="FILE",
        help="SQuAD-format JSON (v1.1, or v2.0 for abstention), or a chain file (.jsonl) of conversations",
    )
    parser.add_argument(
        "--setting",
        choices=SETTING_CHOICES,
        action="append",
        help="per-article (one index per article) or pooled (one index of everything); default both",
    )
    parser.add_argument(
        "--mode", choices=MODE_CHOICES, action="append", help="retrieval mode to measure; default every mode"
    )
    parser.add_argument(
        "--reader",
        choices=("on", "off"),
        action="append",
        help="answer with the reader, or without it (the baseline); default both, side by side",
    )
    parser.add_argument("--limit", metavar="N", type=int, help="ask only the file's first N questions")
    parser.add_argument(
        "--sample", metavar="N", type=int, help="ask N questions spread evenly over the file's articles"
    )
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument(
        "--outcomes", metavar="PATH", help="write every question's outcome here, one JSON object a line"
    )
    parser.add_argument(
        "--passages",
        choices=("configured", "paragraphs"),
        default="configured",
        help="passages as configured (default), or one whole paragraph each, as the SQuAD baselines",
    )
    parser.add_argument(
        "--cache-dir", metavar="PATH", help="keep embeddings here, so a second run skips the model"
    )
    parser.add_argument(
        "--plot",
        metavar="DIR",
        help="also draw the figures as PNG pictures in DIR: the abstention curve (a file with unanswerable "
        "questions) and hit@k and answer sentence by mode; needs matplotlib (articlebot[plots])",
    )
    parser.add_argument(
        "--after-unrelated",
        action="store_true",
        help="ask each question as the follow-up of an answer about another article, as a conversation "
        "would: a question that stands alone must score as asked alone",
    )


def run(args: argparse.Namespace, config: Config) -> int:
    from bot.evaluation.conversations import is_chain_file
    from bot.evaluation.squad import load_squad

    if is_chain_file(Path(args.file)):
        return run_chains(args, config)
    for name in ("limit", "sample"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            print(f"articlebot: error: --{name} must be at least 1", file=sys.stderr)
            return 2
    plots = None
    if args.plot:  # before the run: a missing matplotlib must not surface after an hour of questions
        from bot.evaluation.plots import plot_folder, require_matplotlib

        require_matplotlib()
        plots = plot_folder(args.plot)
    squad = load_squad(Path(args.file).expanduser())
    outcomes: list[dict[str, Any]] | None = [] if plots is not None else None
    figures, meta = measure(squad, config, args, outcomes)
    if args.json:
        print(json.dumps({**meta, "results": [dataclasses.asdict(r) for r in figures]}, ensure_ascii=False))
    else:
        print(render_table(figures, meta))
    if plots is not None and outcomes is not None:
        from bot.evaluation.plots import write_eval_plots

        thresholds = {True: meta["abstain_threshold"], False: meta["baseline_threshold"]}
        written = write_eval_plots(
            plots, Path(args.file), figures, outcomes, thresholds.__getitem__, meta["questions"]
        )
        print(f"articlebot: pictures: {', '.join(map(str, written))}", file=sys.stderr)
    return 0


def measure(
    squad: Any, config: Config, args: argparse.Namespace, outcomes: list[dict[str, Any]] | None = None
) -> tuple[list[Result], dict[str, Any]]:
    """Ask the file's questions in every setting, mode and reader chosen; each question's outcome
    goes into `outcomes` when given (and to --outcomes' file)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bot.engine import AnswerEngine
    from bot.evaluation import harness
    from index.embed import Embedder, SentenceTransformerEmbedder
    from index.split import SplitSettings

    started = time.perf_counter()
    settings_names = args.setting or list(SETTING_CHOICES)
    modes = args.mode or list(MODE_CHOICES)
    split = config.passages
    if args.passages == "paragraphs":
        split = SplitSettings(max_sentences=1000, max_words=100_000, stride=1000, cross_paragraphs=False)
    embedder: Embedder = SentenceTransformerEmbedder(config.model.device)
    if args.cache_dir:
        embedder = harness.CachingEmbedder(embedder, Path(args.cache_dir).expanduser())
    questions = harness.select_questions(squad, args.limit, args.sample)
    # Per-article needs only the articles asked about; pooled needs every paragraph of the file.
    needed = len(squad) if "pooled" in settings_names else max(i for i, q in enumerate(questions) if q) + 1
    stderr = Console(stderr=True)
    with stderr.status("articlebot: splitting and embedding the articles …"):
        corpus = harness.prepare(squad[:needed], embedder, split)
        asked = [q for group in questions for q in group]
        vectors = dict(zip([q.id for q in asked], embedder.encode([q.text for q in asked]), strict=True))
    pooled = None
    if config.index.backend != "local":
        pooled = _pooled_index(config, embedder, corpus, settings_names, split, stderr)
    engine = AnswerEngine(config, embedder=embedder)
    search, base = config.search, config.answer
    readers = [engine.reader.load() if choice == "on" else None for choice in args.reader or ("on", "off")]
    total = len(asked) * len(settings_names) * len(modes) * len(readers)
    if outcomes is None and args.outcomes:
        outcomes = []
    with Progress(
        TextColumn("articlebot: asking"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as progress:
        task = progress.add_task("asking", total=total)
        figures = harness.evaluate(
            corpus,
            questions[:needed],
            vectors,
            search,
            base,
            settings_names,
            modes,
            readers,
            tick=lambda done: progress.advance(task, done),
            outcomes_out=outcomes,
            after_unrelated=(lambda text: embedder.encode([text])[0]) if args.after_unrelated else None,
            pooled=pooled,
        )
    if args.outcomes and outcomes is not None:
        lines = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in outcomes)
        Path(args.outcomes).expanduser().write_text(lines, encoding="utf-8")
    meta = {
        "file": str(args.file),
        "questions": len(asked),
        "articles": sum(1 for group in questions if group),
        "passages": dataclasses.asdict(split),
        "passage_count": sum(len(group) for group in corpus.passages),
        "weights": {"dense": search.dense_weight, "lexical": search.lexical_weight},
        "abstain_threshold": base.abstain_threshold,
        "baseline_threshold": harness.BASELINE_THRESHOLD,
        "seconds": round(time.perf_counter() - started, 1),
        "backend": config.index.backend
        + (f" ({config.index.milvus_fusion} fusion)" if config.index.backend == "milvus" else ""),
    }
    if args.after_unrelated:
        meta["seemed_to_lean"] = harness.seeming_follow_ups(corpus, questions[:needed])
    return figures, meta


def run_chains(args: argparse.Namespace, config: Config) -> int:
    """A chain file: every chain asked over the configured articles, as a conversation and not."""
    from rich.console import Console

    from bot.engine import AnswerEngine
    from bot.evaluation import conversations

    squad_only = [
        name
        for name in ("setting", "mode", "reader", "limit", "sample", "cache_dir", "plot")
        if getattr(args, name, None)
    ]
    if squad_only or args.passages != "configured":
        option = "--" + (squad_only[0] if squad_only else "passages").replace("_", "-")
        print(f"articlebot: error: {option} applies to SQuAD files, not to a chain file", file=sys.stderr)
        return 2
    path = Path(args.file).expanduser()
    chains = conversations.load_chains(path)
    started = time.perf_counter()
    engine = AnswerEngine(config)
    engine.ensure_index()
    with Console(stderr=True).status("articlebot: asking the chains …"):
        on = conversations.run_chains(engine, chains, conversation=True)
        off = conversations.run_chains(engine, chains, conversation=False)
    seconds = time.perf_counter() - started
    if args.outcomes:
        rows = [conversations.to_json(o, True) for o in on] + [conversations.to_json(o, False) for o in off]
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        Path(args.outcomes).expanduser().write_text(lines, encoding="utf-8")
    if args.json:
        figures = {
            name: {
                group: {"right": right, "asked": asked}
                for group, (right, asked) in conversations.shares(o).items()
            }
            for name, o in (("on", on), ("off", off))
        }
        print(
            json.dumps({"file": str(path), "chains": len(chains), "turns": len(on), "conversation": figures})
        )
    else:
        print(conversations.render(on, off, path, seconds))
    return 0


def _pooled_index(
    config: Config, embedder: Any, corpus: Any, settings_names: list[str], split: Any, stderr: Any
) -> Any:
    """Every article in the configured backend (only the pooled setting: one index of everything).
    A Milvus Lite file in a temporary folder unless index.milvus_uri names one; the articles are
    embedded through `embedder`, so --cache-dir serves the vectors the corpus already has."""
    import atexit
    import shutil
    import tempfile

    from bot.config import ConfigError
    from bot.engine import open_store

    if settings_names != ["pooled"]:
        raise ConfigError(
            f"index.backend {config.index.backend!r} is measured pooled only: add --setting pooled"
        )
    index_dir = Path(tempfile.mkdtemp(prefix="articlebot-eval-"))
    atexit.register(shutil.rmtree, index_dir, ignore_errors=True)
    settings = dataclasses.replace(config.index, milvus_collection="articlebot_eval")
    store = open_store(config.replace(index_dir=index_dir, index=settings))
    with stderr.status(f"articlebot: building the index at {store.location} …"):
        index, _ = store.build(corpus.articles, embedder, split, rebuild=True)
    return index


def render_table(figures: list[Result], meta: dict[str, Any]) -> str:
    """A plain-text table, one row per setting and mode."""
    abstention = any(r.auroc is not None for r in figures)
    header = ["setting", "mode", "reader", "hit@1", "hit@3", "hit@5", "MRR@10", "sentence", "EM", "F1"]
    if abstention:
        header += ["AUROC", "acc", "prec", "recall"]
    header.append("seconds")
    rows = []
    for r in figures:
        figures_ = (r.hit1, r.hit3, r.hit5, r.mrr10, r.sentence_accuracy, r.exact, r.f1)
        row = [r.setting, r.mode, "on" if r.reader else "off", *(_f(v) for v in figures_)]
        if abstention:
            row += [_f(v) for v in (r.auroc, r.answered_accuracy, r.answered_precision, r.answered_recall)]
        row.append(f"{r.seconds:.0f}")
        rows.append(row)
    widths = [max(len(str(cells[i])) for cells in [header, *rows]) for i in range(len(header))]
    lines = [
        f"{meta['file']}: {meta['questions']:,} questions over {meta['articles']} articles, "
        f"{meta['passage_count']:,} passages; abstain below {meta['abstain_threshold']:.2f} "
        f"(without the reader: {meta['baseline_threshold']:.2f}); {meta['backend']} backend",
        "  ".join(
            h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))
        ),
    ]
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    if "seemed_to_lean" in meta:
        lines.append(
            f"each asked after an answer about another article: {meta['seemed_to_lean']:,} questions seemed "
            "to lean on it (a pronoun with nothing in the question to refer to), before the article check"
        )
    lines.append(f"({meta['seconds']:.0f} s in all)")
    return "\n".join(lines)


def _f(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}"
