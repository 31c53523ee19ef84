"""The programs scripts/bench.py runs in a fresh interpreter, so that each measures a cold process.

    python scripts/bench_children.py NAME ['{"argument": value, ...}']

Each prints one JSON object as its last line (`build` prints nothing: bench.py kills it mid-build).
Imports stay inside the functions and this module imports only what Python has loaded at start-up
anyway (json and time besides), so what a child times starts from a bare interpreter.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def model_load_torch() -> dict[str, object]:
    """Import and load sentence-transformers, then encode one question: seconds to each."""
    started = time.perf_counter()
    from index.embed import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder("cpu")
    _ = embedder.model  # the model loads on first access
    loaded = time.perf_counter() - started
    embedder.encode(["who was fired?"])
    return {"load": loaded, "first": time.perf_counter() - started}


def model_load_fast() -> dict[str, object]:
    """Import and load the numpy query encoder, then encode one question: seconds to each."""
    started = time.perf_counter()
    from index.fast_encoder import fast_query_encoder

    encoder = fast_query_encoder(load=True)
    loaded = time.perf_counter() - started
    assert encoder is not None, "the fast query encoder is not available"
    encoder.encode(["who was fired?"])
    return {"load": loaded, "first": time.perf_counter() - started}


def ask_imports(index_dir: str, heavy: list[str]) -> dict[str, object]:
    """Which of the `heavy` modules one `articlebot ask` over `index_dir` imports."""
    import contextlib
    import io

    from bot.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        main(["ask", "--index-dir", index_dir, "who?"])
    return {"heavy": [name for name in heavy if name in sys.modules]}


def memory_peak(index_dir: str, query_encoder: str, questions: list[str]) -> dict[str, object]:
    """Peak RSS (MB) of an engine over `index_dir` answering and rendering `questions`."""
    from bot.config import Config, ModelSettings
    from bot.engine import AnswerEngine
    from bot.render import answer_to_json, render_text

    config = Config(index_dir=Path(index_dir), model=ModelSettings(query_encoder=query_encoder))
    said: list[str] = []
    engine = AnswerEngine(config, status=said.append)
    for question in questions:
        answer = engine.ask(question)
        render_text(answer)
        json.dumps(answer_to_json(answer))
    # VmHWM, not ru_maxrss: the latter keeps the forking parent's size across exec.
    status = Path("/proc/self/status").read_text(encoding="ascii").splitlines()
    peak = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM"))
    return {"peak": peak, "torch": "torch" in sys.modules, "built": bool(said)}


def build(articles: str, index_dir: str, marker: str) -> None:
    """Build `index_dir` from `articles`, touching `marker` as each article is split."""
    from index.articles import load_articles
    from index.embed import SentenceTransformerEmbedder
    from index.local.build import build_index

    build_index(
        load_articles([Path(articles)]),
        SentenceTransformerEmbedder(),
        Path(index_dir),
        on_article=lambda article: Path(marker).touch(),
    )


def _config(articles: str, index_dir: str, backend: str) -> object:
    """The bot's config for this archive and index, in the backend named."""
    from bot.config import Config, IndexSettings

    return Config(articles=(Path(articles),), index_dir=Path(index_dir), index=IndexSettings(backend=backend))


def build_archive(articles: str, index_dir: str, anchors: str, backend: str = "local") -> dict[str, object]:
    """`bench.py scale`'s build: the archive's files indexed with its stand-in embedder."""
    import numpy as np

    from bot.engine import open_store
    from index.articles import load_articles
    from index.embed import SentenceTransformerEmbedder
    from scripts.bench import ArchiveEmbedder

    model = SentenceTransformerEmbedder("cpu")
    embedder = ArchiveEmbedder(np.load(anchors), model.count_tokens, model.model_name)
    config = _config(articles, index_dir, backend)
    started = time.perf_counter()
    store = open_store(config)  # type: ignore[arg-type]
    _, report = store.build(load_articles([Path(articles)]), embedder, config.passages)  # type: ignore[attr-defined]
    return {"seconds": time.perf_counter() - started, "passages": report.passages}


def search_archive(
    index_dir: str, anchors: str, questions: list[str], backend: str = "local"
) -> dict[str, object]:
    """Hybrid search timed over a loaded archive, and dense recall@10 against exact search, in a
    process like the bot's: torch never imported (in the benchmark's own process, where torch had
    run, FAISS's and torch's OpenMP threads contended: p50 32 ms against 15 ms here)."""
    import numpy as np

    from bot.engine import open_store
    from index.fast_encoder import NumpyMiniLMEncoder
    from index.store import SearchSettings
    from scripts.bench import ArchiveEmbedder

    tokens = NumpyMiniLMEncoder()
    embedder = ArchiveEmbedder(np.load(anchors), tokens.count_tokens, tokens.model_name)
    loaded = open_store(_config("", index_dir, backend)).load(embedder)  # type: ignore[arg-type]
    vectors = embedder.encode(questions)
    # Twice: the first round also reads index pages no earlier process touched, the second is a
    # running bot's.
    rounds: list[list[float]] = [[], []]
    for times in rounds:
        for question, vector in zip(questions, vectors, strict=True):
            started = time.perf_counter()
            loaded.search(question, vector, k=5)
            times.append(time.perf_counter() - started)
    first, times = rounds
    timed = {
        "p50": float(np.percentile(times, 50)),
        "p95": float(np.percentile(times, 95)),
        "first_p50": float(np.percentile(first, 50)),
    }
    if not hasattr(loaded, "passage_vectors"):
        return {**timed, "recall": float("nan")}  # Milvus: no local copy of the vectors to hold it to
    all_vectors = np.asarray(loaded.passage_vectors, dtype=np.float32)
    exact = vectors @ all_vectors.T
    # The archive repeats paragraphs, so exact scores tie: a found row counts when it scores as
    # well as the exact 10th best, whichever of the tied rows exact search happened to list.
    tenth = np.sort(exact, axis=1)[:, -10]
    rows_of = {passage_id: row for row, passage_id in enumerate(p.id for p in loaded.passages)}
    dense = SearchSettings(mode="dense")
    hits = []
    for number, (question, vector) in enumerate(zip(questions, vectors, strict=True)):
        found = [rows_of[hit.passage.id] for hit in loaded.search(question, vector, k=10, settings=dense)]
        hits.append(sum(exact[number, row] >= tenth[number] - 1e-6 for row in found[:10]) / 10)
    return {
        "p50": float(np.percentile(times, 50)),
        "p95": float(np.percentile(times, 95)),
        "first_p50": float(np.percentile(first, 50)),
        "recall": float(np.mean(hits)),
    }


def serve_archive(articles: str, index_dir: str, question: str, backend: str = "local") -> dict[str, object]:
    """What the bot does at start over a saved archive: load the index (checking it is current
    against the article files), then answer one question; seconds to each, and memory after."""
    started = time.perf_counter()
    from bot.engine import AnswerEngine

    said: list[str] = []
    engine = AnswerEngine(_config(articles, index_dir, backend), status=said.append)  # type: ignore[arg-type]
    engine.ensure_index()
    loaded = time.perf_counter() - started
    engine.ask(question)
    answered = time.perf_counter() - started
    status = Path("/proc/self/status").read_text(encoding="ascii").splitlines()
    rss = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))
    peak = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM"))
    # The process's own memory; the rest of its RSS is mapped index files in the page cache.
    anon = next(int(line.split()[1]) / 1024 for line in status if line.startswith("RssAnon"))
    return {"load": loaded, "answer": answered, "rss": rss, "anon": anon, "peak": peak, "built": bool(said)}


def warm_asks(
    articles: str, index_dir: str, backend: str, questions: list[str], rounds: int
) -> dict[str, object]:
    """A running bot's answers over a built index: p50 / p95 of `ask` and of its search, and memory."""
    import numpy as np

    from bot.engine import AnswerEngine

    engine = AnswerEngine(_config(articles, index_dir, backend), status=lambda message: None)  # type: ignore[arg-type]
    engine.ask(questions[0])
    total, search = [], []
    for _ in range(rounds):
        for question in questions:
            answer = engine.ask(question)
            total.append(answer.timings_ms["total"])
            search.append(answer.timings_ms["search"])
    status = Path("/proc/self/status").read_text(encoding="ascii").splitlines()
    peak = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM"))
    return {
        "p50": float(np.percentile(total, 50)),
        "p95": float(np.percentile(total, 95)),
        "search_p50": float(np.percentile(search, 50)),
        "search_p95": float(np.percentile(search, 95)),
        "peak": peak,
    }


CHILDREN: dict[str, Callable[..., dict[str, object] | None]] = {
    "model-load-torch": model_load_torch,
    "model-load-fast": model_load_fast,
    "ask-imports": ask_imports,
    "memory-peak": memory_peak,
    "build": build,
    "build-archive": build_archive,
    "serve-archive": serve_archive,
    "search-archive": search_archive,
    "warm-asks": warm_asks,
}


def main(argv: list[str]) -> int:
    # No argparse: a child imports nothing before the code it times that the old `-c` programs did not.
    if len(argv) not in (1, 2) or argv[0] not in CHILDREN:
        print(f"usage: bench_children.py {{{','.join(CHILDREN)}}} ['JSON-OBJECT']", file=sys.stderr)
        return 2
    arguments = json.loads(argv[1]) if len(argv) == 2 else {}
    result = CHILDREN[argv[0]](**arguments)
    if result is not None:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    # As `python -c` run in the repository had it: the root first on the path, not this folder.
    sys.path[0] = str(ROOT)
    raise SystemExit(main(sys.argv[1:]))
