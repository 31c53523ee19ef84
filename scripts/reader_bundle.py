"""Train the answer reader on a GPU machine: a bundle made here, a run there, the weights joined here.

The GPU machine receives this repository's working tree and the ignored paths named to go with it
(64 MiB in all); it has torch, transformers, tokenizers, safetensors and numpy, but not pysbd,
bm25s, PyStemmer or the base model's package, and no network. So what needs those is done here:

    build  (here)   splits every SQuAD v1.1 training article as the index does, ranks each question's
                    passages by BM25, makes the rule-made "not here" questions of all four kinds, and
                    writes them with the base model's frozen word embeddings (fp16), its BERT config
                    and tokenizer, and a sample of the dev sets for the run's own check, into
                    .reader-gpu/bundle/ (ignored); it measures tree + bundle against the 64 MiB;
    train  (there)  trains from that folder and the tracked reader (bot/models/reader, the starting
                    weights) alone: several epochs over every training question, each epoch with its
                    own negatives (the passages BM25 ranks next without the answer, the altered
                    questions, other articles' passages), bf16 on a GPU, fitted to a wall-clock
                    budget; it writes the fp16 weights in parts of at most 15 MiB with returned.json
                    (every part's sha256, the whole's, and where the run stopped);
    join   (here)   puts the parts together, checks every sha256, writes a reader folder and loads
                    it; with --continue-in BUNDLE it stores the weights (as an int8 difference from the
                    tracked reader, which travels anyway) and the run's place in the bundle, so that a
                    later call continues the same plan where this one stopped.

    python scripts/reader_bundle.py build --data-dir ../shared/data/squad
    python3 scripts/reader_bundle.py train --device cuda --out "$OUT"          # on the GPU machine
    python scripts/reader_bundle.py join /work/.device/<files_at> --output .reader-gpu/returned

The model card (bot/models/reader/README.md) holds the exact device command.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import lzma
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

STARTED = time.time()  # the budget counts from the process's start
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_reader as training  # noqa: E402

from bot.reader import READER_DIR, WORD_EMBEDDINGS  # noqa: E402
from bot.reader_format import MAX_ANSWER_TOKENS, MAX_LENGTH, MAX_QUESTION_TOKENS, load_tokenizer  # noqa: E402

BUNDLE = ROOT / ".reader-gpu" / "bundle"
RETURNED = ROOT / ".reader-gpu" / "returned"
FORMAT = 1
TRAVEL_LIMIT = 64 * 2**20  # what the device machine receives: working tree plus carried paths
PART_BYTES = 15 * 2**20  # a returned file may be 16 MiB at most
RETURN_FILES = 8
WEIGHTS = "model.safetensors"
TRAIN_DATA = "train.json.xz"
DEV_DATA = "dev.json.xz"
BASE = "base"  # the base model's BERT config, tokenizer and frozen word embeddings
EMBEDDINGS = "word_embeddings.safetensors.xz"
CONTINUATION = "continue.safetensors.xz"
CONTINUATION_STATE = "continue.json"
NEGATIVE_KINDS = ("hard", *training._question_changes(), "far")


class BundleError(Exception):
    """A problem with the bundle or the returned files, said in one line with its fix."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


# --- build (here) ------------------------------------------------------------------------------


def build(args: argparse.Namespace) -> None:
    """Write the bundle: training data with its BM25 ranks and altered questions, dev sample, base."""
    from safetensors.numpy import load_file, save

    from index.embed import model_path

    started = time.time()
    bundle: Path = args.bundle
    articles = training.load_articles(args.data_dir / "train-v1.1.json")[: args.articles or None]
    print(f"split {len(articles)} training articles in {time.time() - started:.0f} s", file=sys.stderr)
    rng = random.Random(args.seed)
    changes = training._question_changes()
    retrievers: dict[int, object] = {}
    questions: list[dict[str, Any]] = []
    skipped = 0
    for a, (article, passages, asked) in enumerate(articles):
        number = {(p.start, p.end): j for j, p in enumerate(passages)}
        for qa in asked:
            answer = article.text[qa["start"] : qa["end"]]
            holding = [j for j, p in enumerate(passages) if p.start <= qa["start"] and qa["end"] <= p.end]
            if not holding or not answer.strip():
                skipped += 1
                continue
            ranked = training._ranked_without(retrievers, a, passages, qa["question"], answer, args.hard)
            changed: list[list[Any]] = []
            for kind, change in changes.items():
                for _ in range(args.variants):
                    gold = rng.choice(holding)
                    text = change(qa["question"], article.text, passages[gold].text, rng)
                    if text is not None and [kind, gold, text] not in changed:
                        changed.append([kind, gold, text])
            questions.append(
                {
                    "article": a,
                    "question": qa["question"],
                    "span": [qa["start"], qa["end"]],
                    "holding": holding,
                    "hard": [number[(p.start, p.end)] for p in ranked],
                    "changed": changed,
                }
            )
    data = {
        "articles": [
            {"title": article.title, "text": article.text, "passages": [[p.start, p.end] for p in passages]}
            for article, passages, _ in articles
        ],
        "questions": questions,
    }
    dev = [
        [
            [context, {k: qa[k] for k in ("question", "answers", "is_impossible") if k in qa}]
            for context, qa in rows
        ]
        for rows in training.dev_sample(args.data_dir, args.seed, args.dev_questions)
    ]
    bundle.mkdir(parents=True, exist_ok=True)
    for stale in (CONTINUATION, CONTINUATION_STATE):  # a new bundle starts a new plan
        (bundle / stale).unlink(missing_ok=True)
    write_atomic(bundle / TRAIN_DATA, lzma.compress(json.dumps(data).encode(), preset=args.xz_preset))
    write_atomic(bundle / DEV_DATA, lzma.compress(json.dumps(dev).encode(), preset=args.xz_preset))
    base = model_path()
    (bundle / BASE).mkdir(exist_ok=True)
    for name in ("config.json", "tokenizer.json"):
        write_atomic(bundle / BASE / name, (base / name).read_bytes())
    embeddings = load_file(str(base / WEIGHTS))["embeddings.word_embeddings.weight"].astype(np.float16)
    stored = lzma.compress(save({WORD_EMBEDDINGS: embeddings}), preset=args.xz_preset)  # 22.4 -> 20.1 MiB
    write_atomic(bundle / BASE / EMBEDDINGS, stored)
    kinds = {kind: sum(any(c[0] == kind for c in q["changed"]) for q in questions) for kind in changes}
    settings = {"seed": args.seed, "hard": args.hard, "variants": args.variants, "articles": len(articles)}
    counts = {
        "questions": len(questions),
        "skipped": skipped,
        "with_hard": sum(bool(q["hard"]) for q in questions),
    }
    write_manifest(
        bundle, {"settings": settings, "counts": {**counts, **{f"with_{k}": n for k, n in kinds.items()}}}
    )
    print(f"bundle: {len(questions):,} questions ({skipped} without a passage holding the answer skipped)")
    print(
        f"  of them with BM25-ranked passages without the answer {counts['with_hard']:,}; "
        + ", ".join(f"with {k} {n:,}" for k, n in kinds.items())
    )
    print(f"  built in {time.time() - started:.0f} s")
    report_travel(bundle)


def write_manifest(bundle: Path, extra: dict[str, Any] | None = None) -> None:
    """bundle.json: the sha256 of every file in the bundle, and how it was made."""
    manifest_path = bundle / "bundle.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() and extra is None else {}
    if extra is not None:
        manifest = {
            "format": FORMAT,
            "made": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "commit": _commit(),
            **extra,
        }
    files = sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != "bundle.json")
    manifest["files"] = {str(p.relative_to(bundle)): sha256(p.read_bytes()) for p in files}
    write_atomic(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


# Tracked, but not read by the run and left behind for its call (see the model card's commands):
# the ONNX export of the shipped weights (21 MiB) would not fit beside the bundle.
LEFT_BEHIND = ("bot/models/reader/reader.onnx",)


def travel_bytes(bundle: Path) -> tuple[int, int] | None:
    """Bytes of the working tree that travels (tracked and untracked files git does not ignore, but
    those LEFT_BEHIND) and of the bundle that is carried beside it."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return None
    tree = sum(
        (ROOT / os.fsdecode(name)).stat().st_size
        for name in set(listed)
        if name and os.fsdecode(name) not in LEFT_BEHIND and (ROOT / os.fsdecode(name)).is_file()
    )
    carried = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    return tree, carried


def report_travel(bundle: Path) -> None:
    measured = travel_bytes(bundle)
    if measured is None:
        print("travels: not measured (no git checkout here)")
        return
    tree, carried = measured
    mib = 2**20
    print(
        f"travels: tree {tree / mib:.1f} MiB (without {', '.join(Path(p).name for p in LEFT_BEHIND)})"
        f" + bundle {carried / mib:.1f} MiB"
        f" = {(tree + carried) / mib:.1f} of {TRAVEL_LIMIT / mib:.0f} MiB"
    )
    if tree + carried > TRAVEL_LIMIT:
        raise BundleError(
            f"tree and bundle are {(tree + carried) / mib:.1f} MiB, over the {TRAVEL_LIMIT / mib:.0f} MiB"
            " the device machine takes: build with fewer --variants or --dev-questions"
        )


# --- the bundle, as the run reads it (there) ----------------------------------------------------


@dataclass
class Bundle:
    """The bundle as the run reads it: training articles with their passages' spans, questions with
    their answer, the passages holding it, BM25's next passages and altered forms, and the dev sample."""

    directory: Path
    manifest: dict[str, Any]
    articles: list[dict[str, Any]]
    questions: list[dict[str, Any]]
    dev: list[list[tuple[str, dict]]]
    data_sha256: str

    @classmethod
    def open(cls, directory: Path) -> Bundle:
        """The bundle, every file checked against bundle.json's sha256."""
        manifest_path = directory / "bundle.json"
        if not manifest_path.is_file():
            raise BundleError(
                f"no bundle at {directory} (no bundle.json): make one with `scripts/reader_bundle.py build`"
            )
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT:
            raise BundleError(
                f"the bundle at {directory} is format {manifest.get('format')}, not {FORMAT}: build it again"
            )
        for name, digest in manifest["files"].items():
            path = directory / name
            if not path.is_file() or sha256(path.read_bytes()) != digest:
                raise BundleError(
                    f"the bundle's {name} is missing or damaged (sha256 differs):"
                    " build it again or carry it whole"
                )
        data = json.loads(lzma.decompress((directory / TRAIN_DATA).read_bytes()))
        dev = [
            [(context, qa) for context, qa in rows]
            for rows in json.loads(lzma.decompress((directory / DEV_DATA).read_bytes()))
        ]
        return cls(
            directory, manifest, data["articles"], data["questions"], dev, manifest["files"][TRAIN_DATA]
        )

    @property
    def base(self) -> Path:
        return self.directory / BASE

    def passage_text(self, article: int, passage: int) -> str:
        start, end = self.articles[article]["passages"][passage]
        return str(self.articles[article]["text"][start:end])


@dataclass(frozen=True)
class Example:
    """One question–passage input, put together from wordpieces: [CLS] question [SEP] passage [SEP]."""

    ids: np.ndarray
    question_tokens: int
    span: tuple[int, int] | None  # first and last token of the answer, counted in the whole input
    kind: str

    def __len__(self) -> int:
        return len(self.ids)


class Pieces:
    """Every passage's and question's wordpieces, cut once, so that an example is a concatenation.
    Tokenising a pair is tokenising its two texts apart (BERT's pre-tokenizer splits on white space
    and punctuation): tests/test_reader_bundle.py holds `example` to bot/reader_format.encode_pairs."""

    def __init__(self, tokenizer_file: Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.cls, self.sep = self.tokenizer.token_to_id("[CLS]"), self.tokenizer.token_to_id("[SEP]")
        self.passages: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.questions: dict[str, np.ndarray] = {}

    def add_passages(self, bundle: Bundle) -> None:
        keys = [(a, p) for a, article in enumerate(bundle.articles) for p in range(len(article["passages"]))]
        encodings = self.tokenizer.encode_batch(
            [bundle.passage_text(a, p) for a, p in keys], add_special_tokens=False
        )
        for key, e in zip(keys, encodings, strict=True):
            self.passages[key] = (
                np.array(e.ids, dtype=np.int32),
                np.array(e.offsets, dtype=np.int64).reshape(-1, 2),
            )

    def add_questions(self, texts: list[str]) -> None:
        new = sorted(set(texts) - self.questions.keys())
        for text, e in zip(new, self.tokenizer.encode_batch(new, add_special_tokens=False), strict=True):
            self.questions[text] = np.array(e.ids[:MAX_QUESTION_TOKENS], dtype=np.int32)

    def example(
        self, question: str, passage: tuple[int, int], span: tuple[int, int] | None, kind: str
    ) -> Example | None:
        """The input for a question and a passage (its answer span in characters of the passage, or
        None); None when truncation cut the answer or it is longer than the reader takes."""
        q = self.questions[question]
        ids, offsets = self.passages[passage]
        kept = MAX_LENGTH - 3 - len(q)
        tokens = None
        if span is not None:
            after = np.nonzero(offsets[:kept, 1] > span[0])[0]
            before = np.nonzero(offsets[:kept, 0] < span[1])[0]
            if (
                not len(after)
                or not len(before)
                or before[-1] < after[0]
                or before[-1] - after[0] >= MAX_ANSWER_TOKENS
            ):
                return None
            tokens = (int(after[0]) + len(q) + 2, int(before[-1]) + len(q) + 2)
        joined = np.concatenate([[self.cls], q, [self.sep], ids[:kept], [self.sep]]).astype(np.int32)
        return Example(joined, len(q), tokens, kind)


def epoch_examples(
    bundle: Bundle, pieces: Pieces, epoch: int, seed: int, negatives: float, far: float = 1.0
) -> list[Example]:
    """One epoch: every question once with a passage holding its answer, and `negatives` "not here"
    examples per question (on average), each of a kind drawn in SHARES' proportions among the kinds
    the question has (the passages BM25 ranks best without its answer, its altered forms, another
    article's passage); a share of questions garbled, as in train_reader.py. Seeded by the epoch, so
    a continued run rebuilds exactly the epochs it left. `far` multiplies the share of another
    article's passages."""
    rng = random.Random(f"{seed}:{epoch}")
    questions = bundle.questions
    have = {kind: sum(_has(q, kind) for q in questions) / max(1, len(questions)) for kind in NEGATIVE_KINDS}
    have["far"] = float(len(bundle.articles) > 1)
    weight = {kind: training.SHARES[kind] / have[kind] for kind in NEGATIVE_KINDS if have[kind]}
    if "far" in weight:
        weight["far"] *= far
    order = list(range(len(questions)))
    rng.shuffle(order)
    drawn: list[tuple[str, tuple[int, int], tuple[int, int] | None, str]] = []
    for i in order:
        q = questions[i]
        a = q["article"]
        plain = (
            training._garble(q["question"], rng) if rng.random() < training.GARBLE_SHARE else q["question"]
        )
        gold = rng.choice(q["holding"])
        start = bundle.articles[a]["passages"][gold][0]
        drawn.append((plain, (a, gold), (q["span"][0] - start, q["span"][1] - start), "answer"))
        count = int(negatives) + (rng.random() < negatives - int(negatives))
        kinds = [kind for kind in weight if _has(q, kind)]
        for kind in rng.choices(kinds, weights=[weight[k] for k in kinds], k=count):
            if kind == "hard":
                drawn.append((plain, (a, rng.choice(q["hard"])), None, kind))
            elif kind == "far":
                other = rng.randrange(len(bundle.articles) - 1)
                other += other >= a  # any article but its own
                drawn.append(
                    (plain, (other, rng.randrange(len(bundle.articles[other]["passages"]))), None, kind)
                )
            else:
                _, passage, text = rng.choice([c for c in q["changed"] if c[0] == kind])
                drawn.append((text, (a, passage), None, kind))
    pieces.add_questions([text for text, _, _, _ in drawn])
    made = [pieces.example(*row) for row in drawn]
    return [e for e in made if e is not None]


def _has(question: dict[str, Any], kind: str) -> bool:
    if kind == "far":
        return True
    if kind == "hard":
        return bool(question["hard"])
    return any(c[0] == kind for c in question["changed"])


def batch_tensors(rows: list[int], examples: list[Example], device: str) -> list[Any]:
    """ids, segment ids, attention mask, passage-token mask, gold start and end, and labels of a
    batch, padded to a multiple of 8."""
    import torch

    length = np.array([len(examples[i]) for i in rows])
    width = int(-(-length.max() // 8) * 8)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    for r, i in enumerate(rows):
        ids[r, : length[r]] = examples[i].ids
    second = np.array([examples[i].question_tokens + 2 for i in rows])[:, None]
    position = np.arange(width)[None, :]
    mask = position < length[:, None]
    spans = np.array([examples[i].span or (0, 0) for i in rows], dtype=np.int64)
    labels = np.array([examples[i].span is not None for i in rows], dtype=np.float32)
    types = ((position >= second) & mask).astype(np.int64)
    passage = (position >= second) & (position < length[:, None] - 1)
    arrays = [ids, types, mask.astype(np.int64), passage, spans[:, 0].copy(), spans[:, 1].copy(), labels]
    return [torch.from_numpy(a).to(device, non_blocking=True) for a in arrays]


# --- train (there) ------------------------------------------------------------------------------


def run(args: argparse.Namespace, started: float) -> None:
    """Train from the bundle within the budget (counted from `started`) and write what comes back
    to --out."""
    budget = Budget(started, args.budget_minutes, args.reserve_seconds)
    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # every core cuts the bundle's texts
    training.quiet_model_loading()
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise BundleError(
            f"torch sees no CUDA device here (--device {args.device}): --device cpu runs on the CPU"
        )
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        torch.set_num_threads(args.threads)
    bundle = Bundle.open(args.bundle)
    place = _continuation(bundle, args)
    torch.manual_seed(args.seed + place.step)
    pieces = Pieces(bundle.base / "tokenizer.json")
    pieces.add_passages(bundle)
    pieces.add_questions([q["question"] for q in bundle.questions])
    pieces.add_questions([c[2] for q in bundle.questions for c in q["changed"]])
    timings: dict[str, Any] = {"load_s": budget.elapsed()}
    say(f"bundle read and tokenised in {timings['load_s']:.1f} s: {len(bundle.questions):,} questions")

    model = training.make_model(args.device, json.loads((bundle.base / "config.json").read_text()))
    _load_weights(model, bundle, args.device)
    optimizer = training.optimizer_for(model, args.lr, fused=cuda)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and args.precision == "bf16")
    epochs = Epochs(bundle, pieces, args)
    examples, plan = epochs.make(place.epoch)
    if not place.planned:
        place.planned = place.total = args.epochs * len(plan)
    warmup = max(1, int(0.06 * place.planned))
    resumed = place.step
    say(
        f"plan: {args.epochs} epochs of ~{len(plan):,} batches of {args.batch_size},"
        f" {place.planned:,} steps; "
        + (f"continuing at step {place.step:,} of {place.total:,}" if place.step else "starting")
    )

    model.train()
    probe = {place.step + 10: (0.0, 0), place.step + 50: (0.0, 0)}
    tokens = trained = 0
    losses = torch.zeros((), device=args.device)
    logged_at, snapshot_at, stopped = place.step, time.time(), None
    training_started = time.time()
    while place.step < place.total:
        if place.at >= len(plan):
            place.epoch, place.at = place.epoch + 1, 0
            examples, plan = epochs.make(place.epoch)
            continue
        if not budget.allows_a_step():
            stopped = "budget"
            break
        if args.max_steps and place.step - resumed >= args.max_steps:
            stopped = "max-steps"
            break
        ids, types, mask, passage, starts, ends, labels = batch_tensors(plan[place.at], examples, args.device)
        with autocast:
            start_logits, end_logits, answerable = model(ids, types, mask)
        outputs = (start_logits.float(), end_logits.float(), answerable.float())
        loss = training.pointwise_loss(*outputs, passage, starts, ends, labels, args.span_weight)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        factor = min(
            (place.step + 1) / warmup, max(0.0, (place.total - place.step) / max(1, place.total - warmup))
        )
        if resumed:  # a continued run's AdamW starts afresh: warm it up again
            factor *= min(1.0, (place.step - resumed + 1) / args.rewarm_steps)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * factor
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses += loss.detach()
        place.step, place.at = place.step + 1, place.at + 1
        tokens, trained = tokens + ids.numel(), trained + len(labels)
        if place.step in probe:
            _synchronize(args.device)
            probe[place.step] = (time.time(), tokens)
            if place.step == max(probe):
                (began, first), (ended, last) = probe.values()
                budget.measure((ended - began) / (last - first), plan, examples, epochs.seconds)
                if not resumed and not args.keep_plan and budget.steps_that_fit() < place.total - place.step:
                    place.total = place.step + budget.steps_that_fit()
                    say(
                        f"fitted to the budget: {place.total:,} of {place.planned:,} steps,"
                        f" {budget.per_step:.3f} s a step"
                    )
        if place.step % args.log_every == 0 or place.step == place.total:
            mean = float(losses) / max(1, place.step - logged_at)
            losses, logged_at = torch.zeros((), device=args.device), place.step
            rate = trained / max(1e-9, time.time() - training_started)
            say(
                f"step {place.step:,}/{place.total:,} epoch {place.epoch} loss {mean:.3f}"
                f" lr {args.lr * factor:.2e} "
                f"{rate:,.0f} examples/s {budget.elapsed():.0f} s"
            )
        if time.time() - snapshot_at > args.snapshot_minutes * 60 and place.step < place.total:
            _write_return(model, args, _state(args, place, bundle, "snapshot"), {}, {})
            snapshot_at = time.time()
    _synchronize(args.device)
    seconds = time.time() - training_started
    timings.update(
        train_s=seconds,
        steps=place.step - resumed,
        examples=trained,
        examples_per_s=trained / max(1e-9, seconds),
        padded_tokens_per_s=tokens / max(1e-9, seconds),
        epoch_build_s=epochs.seconds,
    )
    model.eval()
    state = _state(args, place, bundle, stopped)
    exported = time.time()
    _write_return(model, args, state, timings, {})
    timings["export_s"] = time.time() - exported
    checked = time.time()
    rows = [cases[: args.dev_questions] for cases in bundle.dev]
    dev = training.dev_metrics(model, load_tokenizer(bundle.base), rows, args.device)
    timings["dev_check_s"] = time.time() - checked
    timings["total_s"] = budget.elapsed()
    _write_return(model, args, state, timings, dev, weights=False)
    ended = (
        "finished" if state["finished"] else f"stopped ({stopped}) at step {place.step:,} of {place.total:,}"
    )
    say(f"{ended}: {trained:,} examples in {seconds:.0f} s ({timings['examples_per_s']:,.0f}/s)")
    say(
        f"{timings['total_s']:.0f} s in all"
        + ("" if state["finished"] else "; join with --continue-in to go on")
    )


def say(line: str) -> None:
    print(line, flush=True)


@dataclass
class Place:
    """Where a run stands in its plan of `planned` steps (shortened to `total` to fit its budget)."""

    step: int = 0
    epoch: int = 0
    at: int = 0  # batches of the epoch done
    planned: int = 0
    total: int = 0


class Budget:
    """The command's wall clock: whether another step fits before the reserve for export and the dev
    check, and how many steps fit, from the measured time per padded token."""

    def __init__(self, started: float, minutes: float, reserve_seconds: float) -> None:
        self.started = started
        self.deadline = started + minutes * 60 - reserve_seconds
        self.per_step = 0.0

    def elapsed(self) -> float:
        return time.time() - self.started

    def allows_a_step(self) -> bool:
        return time.time() + self.per_step < self.deadline

    def measure(
        self, seconds_per_token: float, plan: list[list[int]], examples: list[Example], build_s: float
    ) -> None:
        """A step's time, on average over the epoch's batches (each padded to its longest), with the
        time spent making the epochs shared out over their steps."""
        padded = [-(-max(len(examples[i]) for i in batch) // 8) * 8 * len(batch) for batch in plan]
        self.per_step = seconds_per_token * sum(padded) / len(plan) + build_s / max(1, len(plan))

    def steps_that_fit(self) -> int:
        return int((self.deadline - time.time()) / (self.per_step * 1.05)) if self.per_step else 1 << 62


class Epochs:
    """The plan's epochs, each made when the run reaches it (seeded by its number), and the time
    spent making them."""

    def __init__(self, bundle: Bundle, pieces: Pieces, args: argparse.Namespace) -> None:
        self.bundle, self.pieces, self.args = bundle, pieces, args
        self.seconds = 0.0
        self.made = 0

    def make(self, epoch: int) -> tuple[list[Example], list[list[int]]]:
        started = time.time()
        examples = epoch_examples(
            self.bundle, self.pieces, epoch, self.args.seed, self.args.negatives, self.args.far
        )
        rng = random.Random(f"{self.args.seed}:{epoch}:batches")
        plan = training.batches([(e, e.span, -1) for e in examples], self.args.batch_size, rng)
        self.seconds = (self.seconds * self.made + time.time() - started) / (self.made + 1)
        self.made += 1
        _describe(examples, epoch, time.time() - started)
        return examples, plan


def _synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _describe(examples: list[Example], epoch: int, seconds: float) -> None:
    kinds: dict[str, int] = {}
    for e in examples:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    mix = ", ".join(f"{k} {n / len(examples):.0%}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    print(f"epoch {epoch}: {len(examples):,} examples ({mix}), made in {seconds:.1f} s", flush=True)


# The settings a continued call takes from the call it continues, so that its plan stays the same.
PLAN_SETTINGS = ("seed", "epochs", "batch_size", "lr", "negatives", "far", "span_weight")


def _state(args: argparse.Namespace, place: Place, bundle: Bundle, stopped: str | None) -> dict[str, Any]:
    """Where the run stands and the settings of its plan, as returned.json records them."""
    finished = place.step >= place.total
    return {
        **dataclasses.asdict(place),
        "finished": finished,
        "stopped": None if finished else stopped,
        **{name: getattr(args, name) for name in PLAN_SETTINGS},
        "data_sha256": bundle.data_sha256,
        "started_from_sha256": _tracked_reader_sha256(),  # the shipped weights it started from
    }


@functools.lru_cache(maxsize=1)
def _tracked_reader_sha256() -> str:
    return sha256((READER_DIR / WEIGHTS).read_bytes())


def _continuation(bundle: Bundle, args: argparse.Namespace) -> Place:
    """Where an earlier call stopped, if the bundle carries it (else the start); its plan's settings
    replace the flags."""
    path = bundle.directory / CONTINUATION_STATE
    if not path.is_file():
        return Place()
    state = json.loads(path.read_text())["state"]
    if state["data_sha256"] != bundle.data_sha256:
        raise BundleError("the bundle's continuation was made on other training data: build the bundle again")
    changed = [
        f"--{n.replace('_', '-')} {state[n]}"
        for n in PLAN_SETTINGS
        if n in state and getattr(args, n) != state[n]
    ]
    if changed:
        say(f"continuing the earlier call's plan: {', '.join(changed)} (its settings, not this call's flags)")
    for name in PLAN_SETTINGS:
        setattr(args, name, state.get(name, getattr(args, name)))
    return Place(**{field.name: state[field.name] for field in dataclasses.fields(Place)})


def _load_weights(model: Any, bundle: Bundle, device: str) -> None:
    """The tracked reader's weights (or, continuing, those plus the carried difference) and the base
    model's frozen word embeddings."""
    import torch
    from safetensors.numpy import load, load_file

    reader = READER_DIR / WEIGHTS
    continuing = bundle.directory / CONTINUATION_STATE
    if continuing.is_file():
        expected = json.loads(continuing.read_text())["base_sha256"]
        if _tracked_reader_sha256() != expected:
            raise BundleError(
                f"the bundle continues from weights stored as a difference from another"
                f" {reader.relative_to(ROOT)}: join with --continue-in again"
            )
        weights = apply_difference(
            load_file(str(reader)), lzma.decompress((bundle.directory / CONTINUATION).read_bytes())
        )
        print(
            f"continuing from the weights {json.loads(continuing.read_text())['weights_sha256'][:12]}…",
            flush=True,
        )
    else:
        weights = {k: v.astype(np.float32) for k, v in load_file(str(reader)).items()}
    weights[WORD_EMBEDDINGS] = load(lzma.decompress((bundle.base / EMBEDDINGS).read_bytes()))[
        WORD_EMBEDDINGS
    ].astype(np.float32)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    model.to(device)


def difference(new: dict[str, np.ndarray], base: dict[str, np.ndarray]) -> bytes:
    """safetensors bytes of new - base, each tensor's rows in int8 with a scale per row: about a
    quarter of fp32, and finer than fp16 for differences much smaller than the weights."""
    from safetensors.numpy import save

    out: dict[str, np.ndarray] = {}
    for name, value in new.items():
        delta = (value.astype(np.float32) - base[name].astype(np.float32)).reshape(
            value.shape[0] if value.ndim > 1 else 1, -1
        )
        scale = np.abs(delta).max(axis=1) / 127
        scale[scale == 0] = 1.0
        out[name] = np.round(delta / scale[:, None]).astype(np.int8)
        out[f"{name}.scale"] = scale.astype(np.float32)
    return bytes(save(out))


def apply_difference(base: dict[str, np.ndarray], stored: bytes) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    delta = load(stored)
    return {
        name: value.astype(np.float32)
        + (delta[name].astype(np.float32) * delta[f"{name}.scale"][:, None]).reshape(value.shape)
        for name, value in base.items()
    }


def _write_return(
    model: Any,
    args: argparse.Namespace,
    state: dict[str, Any],
    timings: dict[str, Any],
    dev: dict[str, float],
    weights: bool = True,
) -> None:
    """--out: the fp16 weights in parts, config.json, and returned.json saying how to put them together."""
    import torch

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "returned.json"
    if weights:
        settings = {
            "run": "scripts/reader_bundle.py",
            **{k: state[k] for k in (*PLAN_SETTINGS[:5], "far", "step", "total")},
            "init_from": f"bot/models/reader (sha256 {state['started_from_sha256'][:12]}…)",
            "finished": state["finished"],
        }
        staging = out / ".export"
        training.export(model, staging, settings)
        data = (staging / WEIGHTS).read_bytes()
        parts = split(data, out, WEIGHTS)
        (staging / "config.json").replace(out / "config.json")
        (staging / WEIGHTS).unlink()
        staging.rmdir()
        record = {
            "format": FORMAT,
            "weights": {"name": WEIGHTS, "bytes": len(data), "sha256": sha256(data), "parts": parts},
        }
    else:
        record = json.loads(record_path.read_text())
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    record.update(state=state, timings=timings, dev=dev, device=device, torch=torch.__version__)
    write_atomic(record_path, (json.dumps(record, indent=2) + "\n").encode())


def split(data: bytes, out: Path, name: str, part_bytes: int = PART_BYTES) -> list[dict[str, Any]]:
    """`data` as name.part00, name.part01 … in `out`, each at most `part_bytes`, with their sha256."""
    parts = []
    for number, begin in enumerate(range(0, max(1, len(data)), part_bytes)):
        chunk = data[begin : begin + part_bytes]
        part = f"{name}.part{number:02d}"
        write_atomic(out / part, chunk)
        parts.append({"name": part, "bytes": len(chunk), "sha256": sha256(chunk)})
    for stale in sorted(out.glob(f"{name}.part*"))[len(parts) :]:
        stale.unlink()
    return parts


# --- join (here) --------------------------------------------------------------------------------


def join_parts(folder: Path) -> tuple[bytes, dict[str, Any]]:
    """The returned weights put together, every part and the whole checked against returned.json."""
    record_path = folder / "returned.json"
    if not record_path.is_file():
        raise BundleError(f"no returned.json in {folder}: give the folder the run's files were fetched to")
    try:
        record = json.loads(record_path.read_text())
        parts = [(part["name"], part["bytes"], part["sha256"]) for part in record["weights"]["parts"]]
        expected = record["weights"]["sha256"]
    except (ValueError, KeyError, TypeError) as error:
        raise BundleError(f"{record_path} is not what a run of this script writes ({error!r})") from error
    whole = bytearray()
    for name, size, digest in parts:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise BundleError(f"returned.json names a part {name!r} outside {folder}")
        path = folder / name
        if not path.is_file():
            raise BundleError(f"{name} is missing from {folder}: fetch the run's files again")
        chunk = path.read_bytes()
        if len(chunk) != size or sha256(chunk) != digest:
            raise BundleError(
                f"{name} is damaged (sha256 differs from returned.json): fetch the run's files again"
            )
        whole += chunk
    if sha256(bytes(whole)) != expected:
        raise BundleError(
            "the parts put together differ from the weights the run wrote (sha256):"
            " fetch the run's files again"
        )
    return bytes(whole), record


def join(args: argparse.Namespace) -> None:
    from bot.reader import Reader, ReaderError

    weights, record = join_parts(args.folder)
    if not (args.folder / "config.json").is_file():
        raise BundleError(f"config.json is missing from {args.folder}: fetch the run's files again")
    if args.continue_in and not (args.continue_in / "bundle.json").is_file():
        raise BundleError(f"no bundle at {args.continue_in} to continue in (no bundle.json)")
    config = json.loads((args.folder / "config.json").read_text())
    if config["reader"]["sha256"] != record["weights"]["sha256"]:
        raise BundleError("config.json names other weights than returned.json: fetch the run's files again")
    output: Path = args.output
    write_atomic(output / WEIGHTS, weights)
    for name in ("config.json", "returned.json"):
        write_atomic(output / name, (args.folder / name).read_bytes())
    try:
        # the bot's own loader checks the weights against config.json; the numpy reference, since
        # reader.onnx is exported from whatever weights ship, after they are measured
        Reader(output, runtime="numpy").load()
    except ReaderError as error:
        raise BundleError(f"the joined weights do not load as the bot's reader: {error}") from error
    state = record["state"]
    print(
        f"joined {len(record['weights']['parts'])} parts into {output / WEIGHTS}"
        f" (sha256 {record['weights']['sha256'][:12]}… checked; the bot's reader loads it)"
    )
    ended = "finished" if state["finished"] else f"stopped ({state['stopped']})"
    print(f"the run {ended} at step {state['step']:,} of {state['total']:,} (epoch {state['epoch']})")
    print(f"its own check on the dev sample: {record['dev']}")
    if args.continue_in:
        write_continuation(args.continue_in, output, record)


def write_continuation(bundle: Path, joined: Path, record: dict[str, Any]) -> None:
    """The joined weights as an int8 difference from the tracked reader, and where the run stopped,
    into the bundle, so that the next call continues the same plan."""
    from safetensors.numpy import load_file

    state = record["state"]
    if state["finished"]:
        raise BundleError(
            "the run finished its plan: there is nothing to continue (build a new bundle for a new run)"
        )
    if state["data_sha256"] != json.loads((bundle / "bundle.json").read_text())["files"][TRAIN_DATA]:
        raise BundleError(f"the run trained on another bundle than {bundle}")
    reader = READER_DIR / WEIGHTS
    stored = difference(load_file(str(joined / WEIGHTS)), load_file(str(reader)))
    write_atomic(bundle / CONTINUATION, lzma.compress(stored, preset=0))  # 6 saves ~10% at 20x the time
    continuation = {
        "base_sha256": _tracked_reader_sha256(),
        "weights_sha256": record["weights"]["sha256"],
        "state": state,
    }
    write_atomic(bundle / CONTINUATION_STATE, (json.dumps(continuation, indent=2) + "\n").encode())
    write_manifest(bundle)
    print(
        f"the bundle continues from step {state['step']:,} of {state['total']:,}"
        f" ({(bundle / CONTINUATION).stat().st_size / 2**20:.1f} MiB)"
    )
    report_travel(bundle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("build", help="write the bundle (here: needs pysbd, bm25s and the base model)")
    made.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get(training.DATA_ENV) or None,
        metavar="PATH",
        help=f"SQuAD folder (default ${training.DATA_ENV})",
    )
    made.add_argument("--bundle", type=Path, default=BUNDLE)
    made.add_argument(
        "--hard",
        type=int,
        default=6,
        help="BM25's best passages of the article, those without the answer kept",
    )
    made.add_argument("--variants", type=int, default=2, help="draws of each rule that alters a question")
    made.add_argument(
        "--dev-questions", type=int, default=600, help="dev questions per set for the run's own check"
    )
    made.add_argument("--articles", type=int, default=0, help="only the first N training articles (0: all)")
    made.add_argument("--seed", type=int, default=13)
    made.add_argument("--xz-preset", type=int, default=9)

    trained = commands.add_parser("train", help="train from the bundle alone (there)")
    trained.add_argument("--bundle", type=Path, default=BUNDLE)
    trained.add_argument("--out", type=Path, required=True, help="where the returned files go ($OUT)")
    trained.add_argument("--device", default="cuda")
    trained.add_argument("--precision", choices=("bf16", "fp32"), default="bf16", help="autocast on a GPU")
    trained.add_argument("--epochs", type=int, default=4)
    trained.add_argument("--batch-size", type=int, default=256)
    trained.add_argument("--lr", type=float, default=1e-4)
    trained.add_argument(
        "--negatives", type=float, default=1.0, help="'not here' examples per question and epoch"
    )
    trained.add_argument(
        "--far", type=float, default=1.0, help="multiplies the share of another article's passages among them"
    )
    trained.add_argument("--span-weight", type=float, default=1.0)
    trained.add_argument("--seed", type=int, default=21)
    trained.add_argument("--budget-minutes", type=float, default=7.5, help="wall clock for the whole command")
    trained.add_argument(
        "--reserve-seconds", type=float, default=45.0, help="kept for export and the dev check"
    )
    trained.add_argument("--keep-plan", action="store_true", help="do not shorten the plan to fit the budget")
    trained.add_argument(
        "--max-steps", type=int, default=0, help="stop after N steps in this call (0: no limit)"
    )
    trained.add_argument("--rewarm-steps", type=int, default=100)
    trained.add_argument("--snapshot-minutes", type=float, default=2.0)
    trained.add_argument("--log-every", type=int, default=100)
    trained.add_argument("--threads", type=int, default=2)
    trained.add_argument(
        "--dev-questions",
        type=int,
        default=600,
        help="of the bundle's dev sample, per set, for the run's check",
    )

    joined = commands.add_parser("join", help="put the returned parts together and check them (here)")
    joined.add_argument("folder", type=Path, help="the folder the run's files were fetched to")
    joined.add_argument("--output", type=Path, default=RETURNED)
    joined.add_argument(
        "--continue-in", type=Path, metavar="BUNDLE", help="store the run's place in this bundle"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            if problem := training.data_dir_problem(args.data_dir):
                raise BundleError(problem)
            build(args)
        elif args.command == "train":
            run(args, STARTED if argv is None else time.time())
        else:
            join(args)
    except BundleError as error:
        print(f"reader_bundle.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
