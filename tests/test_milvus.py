"""The index in Milvus, against Milvus Lite: the real engine, in-process, in a temporary file.

The bundled article's questions get the same answers as from the local store; articles are added,
changed and removed by their id; a rebuild is swapped in by an alias while questions are asked;
every expected failure (another model's collection, a locked file, a server that cannot be
reached) is one line. Updates use the deterministic HashEmbedder (tests/fakes.py) for speed; the
answers use the real model.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fakes import HashEmbedder

from bot.cli import main
from bot.config import BUNDLED_ARTICLES, Config, IndexSettings, load_config
from bot.engine import AnswerEngine
from index.articles import load_articles
from index.embed import SentenceTransformerEmbedder
from index.errors import ArticlebotError, IndexMismatchError
from index.store import SearchSettings

pytest.importorskip("milvus_lite")

from index.milvus import MilvusStore

DATA = Path(__file__).parent / "data"
STORIES = {
    "storm": "Title: Storm hits coast\n\nA storm hit the coast on Monday. Thousands lost power.\n\n"
    "The mayor opened three shelters. Schools stay closed until Friday.",
    "budget": "Title: Budget passes\n\nParliament passed the budget by 201 votes to 180. "
    "Taxes on fuel rise in July.\n\nThe opposition called it a betrayal of farmers.",
    "match": "Title: Cup final\n\nThe home side won the cup final 2-1 after extra time. "
    "Their captain scored the winner.",
}


def milvus_config(tmp: Path, articles: tuple[Path, ...] = (BUNDLED_ARTICLES,)) -> Config:
    return Config(
        articles=articles,
        index_dir=tmp / "index",
        index=IndexSettings(backend="milvus", milvus_collection="news"),
    )


def write(folder: Path, stories: dict[str, str]) -> None:
    folder.mkdir(exist_ok=True)
    for name, text in stories.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")


def top(index: object, query: str, embedder: HashEmbedder, **kwargs: object) -> list[str]:
    vector = embedder.encode([query])[0]
    hits = index.search(query, vector, k=3, settings=SearchSettings(), **kwargs)  # type: ignore[attr-defined]
    return [hit.passage.article_id for hit in hits]


@pytest.mark.slow
def test_the_bundled_articles_questions_get_the_same_answers_as_from_the_local_store(
    tmp_path: Path, engine: AnswerEngine, embedder: SentenceTransformerEmbedder
) -> None:
    milvus = AnswerEngine(milvus_config(tmp_path), embedder=embedder, status=lambda message: None)
    milvus.ensure_index()
    questions = [
        qa["question"]
        for article in json.loads((DATA / "article_questions.json").read_text(encoding="utf-8"))["data"]
        if article["title"].startswith("armenia")
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]
    assert len(questions) >= 50
    for question in questions:
        local, remote = engine.ask(question), milvus.ask(question)
        assert remote.answered == local.answered, question
        assert [p.passage.id for p in remote.passages] == [p.passage.id for p in local.passages], question
        if local.sentence is not None:
            assert remote.sentence is not None
            assert (remote.sentence.text, remote.sentence.short) == (
                local.sentence.text,
                local.sentence.short,
            )
    # What the front ends read of the index is the same too.
    index, other = milvus.index, engine.index
    passage = other.passage("armenia-2021-03-01#3")
    assert passage is not None and index.passage(passage.id) == passage
    assert index.sentences_of(passage) == other.sentences_of(passage)
    assert index.surrounding(passage, 1) == other.surrounding(passage, 1)
    assert dict(index.passage_counts) == dict(other.passage_counts)
    assert index.articles["armenia-2021-03-01"] == other.articles["armenia-2021-03-01"]
    assert index.paragraph_count("armenia-2021-03-01") == other.paragraph_count("armenia-2021-03-01")
    assert index.word_counts == other.word_counts
    assert index.idf("pashinian") == pytest.approx(other.idf("pashinian"))


def test_articles_are_added_changed_and_removed_by_their_id(tmp_path: Path) -> None:
    folder, embedder = tmp_path / "news", HashEmbedder()
    write(folder, {"storm": STORIES["storm"], "budget": STORIES["budget"]})
    store = MilvusStore(str(tmp_path / "milvus.db"), "news", lock_dir=tmp_path)
    settings = milvus_config(tmp_path).passages
    index, report = store.build(load_articles([folder]), embedder, settings)
    assert (report.articles, report.embedded_articles) == (2, 2)
    generation = store.generation()

    write(folder, {"match": STORIES["match"]})
    embedder.encoded.clear()
    index, report = store.build(load_articles([folder]), embedder, settings)
    assert (report.embedded_articles, report.removed_articles) == (1, 0)
    assert all("storm" not in text.lower() for text in embedder.encoded)  # only the new article embedded
    assert store.generation() == generation  # updated in place, no rebuild
    assert top(index, "who won the cup final", embedder)[0] == "match"

    # A changed article, long enough to be stored in several rows, under another file name.
    long = STORIES["storm"].replace("Thousands lost power", "Ten ferries sank")
    long += "".join(f"\n\nThe harbour master counted boat number {n} afloat." for n in range(800))
    (folder / "storm.txt").unlink()
    write(folder, {"storm (coast)": long})
    renamed = load_articles([folder / "storm (coast).txt"])[0]
    index, report = store.build(load_articles([folder]), embedder, settings)
    assert (report.embedded_articles, report.removed_articles) == (1, 1)
    assert index.articles[renamed.id].text == renamed.text and len(renamed.text) > 40_000
    assert index.paragraph_count(renamed.id) == 2 + 800
    last = index.passage(f"{renamed.id}#{index.passage_counts[renamed.id] - 1}")
    assert last is not None and index.surrounding(last, 1).last_paragraph == 802
    assert top(index, "ferries sank", embedder, within=[renamed.id]) == [renamed.id] * 3
    (folder / "storm (coast).txt").unlink()
    write(folder, {"storm": long})
    index, report = store.build(load_articles([folder]), embedder, settings)
    assert report.embedded_articles == 1
    assert "Ten ferries sank" in index.articles["storm"].text
    assert top(index, "ferries sank", embedder)[0] == "storm"
    assert sum(index.passage_counts.values()) == store.read_manifest().passage_count

    (folder / "budget.txt").unlink()
    index, report = store.build(load_articles([folder]), embedder, settings)
    assert report.removed_articles == 1 and "budget" not in index.articles
    assert "budget" not in top(index, "parliament passed the budget", embedder)
    assert index.passage("budget#0") is None
    assert sorted((a.id, a.title) for a in index.articles.values()) == [
        ("match", "Cup final"),
        ("storm", "Storm hits coast"),
    ]
    assert "betrayal" not in index.word_counts
    assert top(index, "storm coast power", embedder, within=["match"]) == ["match"]
    assert store.check().startswith("the index at")


def test_a_rebuild_is_swapped_in_while_questions_are_asked(tmp_path: Path) -> None:
    folder, embedder = tmp_path / "news", HashEmbedder()
    write(folder, STORIES)
    config = milvus_config(tmp_path, (folder,))
    engine = AnswerEngine(config, embedder=embedder, status=lambda message: None)
    engine.ensure_index()
    first = engine.store.generation()  # type: ignore[attr-defined]
    failures: list[BaseException] = []
    found: list[str] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                index = engine.index
                found.extend(top(index, "who won the cup final", embedder)[:1])
            except BaseException as error:  # any failure at all is the test's
                failures.append(error)

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        for _ in range(2):
            engine.build(rebuild=True)
    finally:
        stop.set()
        asker.join()
    assert not failures
    assert found and set(found) == {"match"}
    assert engine.store.generation() != first  # type: ignore[attr-defined]
    # The generation a rebuild replaced stays for whoever still reads it, until the next build.
    collections = engine.store.client.list_collections()  # type: ignore[attr-defined]
    assert first not in collections
    assert len([name for name in collections if not name.endswith("_docs")]) == 2


def test_a_collection_built_by_another_model_is_refused_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "news"
    write(folder, STORIES)
    store = MilvusStore(str(tmp_path / "milvus.db"), "news", lock_dir=tmp_path)
    store.build(load_articles([folder]), HashEmbedder(), milvus_config(tmp_path).passages)

    class Wider(HashEmbedder):
        dimension = 512

    with pytest.raises(IndexMismatchError, match=r"built with dimension 384, not 512: rebuild it"):
        store.load(Wider())


def test_a_locked_lite_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "milvus.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from pymilvus import MilvusClient; MilvusClient({str(path)!r}); print('ok', flush=True); "
            "input()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        with pytest.raises(ArticlebotError, match="is in use by another process"):
            MilvusStore(str(path), "news").read_manifest()
    finally:
        holder.communicate("\n", timeout=30)


def test_a_read_only_folder_and_a_file_in_the_way_each_get_their_own_line(
    tmp_path: Path, read_only_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Milvus Lite's own words for a read-only folder are "Open local milvus failed", which read
    as a file in use; a file where its folder should be was a raw FileExistsError."""
    in_the_way = tmp_path / "taken"
    in_the_way.write_text("not a folder", encoding="utf-8")
    taken = re.escape(str(in_the_way))
    cases = {
        read_only_folder: r"cannot save the index at \S+: (the folder is on a read-only file|no permission)",
        in_the_way: rf"the index folder {taken} cannot be made: {taken} is a file, not a folder",
        in_the_way / "sub": rf"the index folder {taken}/sub cannot be made: {taken} is a file, not a folder",
    }
    for folder, said in cases.items():
        config = dataclasses.replace(milvus_config(tmp_path), index_dir=folder)
        with pytest.raises(ArticlebotError, match=said):
            AnswerEngine(config, embedder=HashEmbedder(), status=lambda message: None).ensure_index()
    assert in_the_way.read_text(encoding="utf-8") == "not a folder"
    assert not any(read_only_folder.iterdir())


def test_a_server_that_refuses_connection_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "articlebot.toml"
    config.write_text(
        '[index]\nbackend = "milvus"\nmilvus_uri = "http://127.0.0.1:9"\n'
        'milvus_token = "root:secret-token"\n',
        encoding="utf-8",
    )
    status = main(["--config", str(config), "ask", "who was fired?"])
    error = capsys.readouterr().err
    assert status == 1
    assert "cannot reach a Milvus server at http://127.0.0.1:9" in error
    assert "Traceback" not in error and "secret-token" not in error
    assert len(error.strip().splitlines()) == 1


def test_the_index_section_is_read_and_checked(tmp_path: Path) -> None:
    config = tmp_path / "articlebot.toml"
    config.write_text('[index]\nbackend = "milvus"\nmilvus_uri = "data/milvus.db"\n', encoding="utf-8")
    loaded = load_config(config, environ={"ARTICLEBOT_MILVUS_TOKEN": "user:pass"})
    assert loaded.index.milvus_uri == str(tmp_path / "data" / "milvus.db")  # relative to the file
    assert loaded.index.milvus_token == "user:pass" and "user:pass" not in repr(loaded)
    server = dataclasses.replace(loaded.index, milvus_uri="http://milvus.example.org:19530")
    assert MilvusStore.of_settings(server, tmp_path).uri == "http://milvus.example.org:19530"
    assert load_config(None, environ={}).index.backend == "local"
    for text, message in (
        ('[index]\nbackend = "opensearch"', "index.backend is 'opensearch': use one of local, milvus"),
        ('[index]\nmilvus_collection = "my-index"', "index.milvus_collection is 'my-index'"),
        ('[index]\nmilvus_fusion = "max"', "index.milvus_fusion is 'max'"),
        ('[index]\nmilvus_uri = ""', "index.milvus_uri is empty"),
    ):
        config.write_text(text, encoding="utf-8")
        with pytest.raises(ArticlebotError, match=message):
            load_config(config, environ={})
