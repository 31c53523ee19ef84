"""Updates touch only what changed: a segment per build that embeds, articles masked in place, small
segments merged. Fast, with the deterministic HashEmbedder (tests/fakes.py); the real model's
path through the same code is tested in test_store.py and test_ingest.py."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from fakes import HashEmbedder

from index.articles import load_articles
from index.lexical import tokenize
from index.local.build import MAX_SEGMENTS, build_index
from index.local.storage import load_index
from index.manifest import Manifest
from index.split import SplitSettings
from index.store import SearchSettings

STORIES = {
    "storm": "Title: Storm hits coast\n\nA storm hit the coast on Monday. Thousands lost power.\n\n"
    "The mayor opened three shelters. Schools stay closed until Friday.",
    "budget": "Title: Budget passes\n\nParliament passed the budget by 201 votes to 180. "
    "Taxes on fuel rise in July.\n\nThe opposition called it a betrayal of farmers.",
    "match": "Title: Cup final\n\nThe home side won the cup final 2-1 after extra time. "
    "Their captain scored the winner.",
}
EXTRA = {
    f"town-{n}": f"Title: Town news {n}\n\nThe council of Harbury{n} voted to repair bridge number {n}. "
    f"Work on the quay of Harbury{n} starts in spring."
    for n in range(MAX_SEGMENTS + 2)
}


def write(folder: Path, stories: dict[str, str]) -> None:
    folder.mkdir(exist_ok=True)
    for name, text in stories.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")


def segment_files(index_dir: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(index_dir)): path.read_bytes()
        for path in index_dir.rglob("*")
        if path.is_file() and path.relative_to(index_dir).parts[0].startswith("seg-")
    }


def top(index: object, query: str, embedder: HashEmbedder, mode: str = "hybrid") -> str:
    vector = embedder.encode([query])[0]
    hits = index.search(query, vector, k=1, settings=SearchSettings(mode=mode))  # type: ignore[attr-defined]
    return str(hits[0].passage.article_id)


def test_adding_an_article_writes_one_segment_and_touches_no_other(tmp_path: Path) -> None:
    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, {"storm": STORIES["storm"], "budget": STORIES["budget"]})
    build_index(load_articles([folder]), embedder, index_dir)
    before = segment_files(index_dir)
    write(folder, {"match": STORIES["match"]})
    embedder.encoded.clear()
    index, report = build_index(load_articles([folder]), embedder, index_dir)
    assert (report.articles, report.embedded_articles, report.removed_articles) == (3, 1, 0)
    assert embedder.encoded and all(text in STORIES["match"] for text in embedder.encoded)
    after = segment_files(index_dir)
    assert {name: after[name] for name in before} == before  # not a byte of the old segment changed
    assert len(Manifest.read(index_dir).segments) == 2
    assert top(index, "who won the cup final?", embedder) == "match"
    assert top(load_index(index_dir, embedder), "fuel taxes in July", embedder) == "budget"


def test_removed_and_changed_articles_are_masked_where_they_stand(tmp_path: Path) -> None:
    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, STORIES)
    build_index(load_articles([folder]), embedder, index_dir)
    (folder / "match.txt").unlink()
    write(folder, {"storm": STORIES["storm"].replace("three shelters", "five shelters")})
    index, report = build_index(load_articles([folder]), embedder, index_dir)
    assert (report.embedded_articles, report.removed_articles) == (1, 1)
    first, second = Manifest.read(index_dir).segments
    assert first.deleted == ("match", "storm") and second.articles == ("storm",)
    for loaded in (index, load_index(index_dir, embedder)):
        assert set(loaded.articles) == {"storm", "budget"}
        assert not any(p.article_id == "match" for p in loaded.passages)
        storm = [p.text for p in loaded.passages if p.article_id == "storm"]
        assert storm and all("three shelters" not in text for text in storm)
        assert any("five shelters" in text for text in storm)
        assert len({p.id for p in loaded.passages}) == len(loaded.passages)  # no passage twice
        assert top(loaded, "how many shelters did the mayor open?", embedder) == "storm"
        assert top(loaded, "cup final captain", embedder, mode="lexical") != "match"
    # Removing everything of a segment drops the segment itself.
    (folder / "budget.txt").unlink()
    build_index(load_articles([folder]), embedder, index_dir)
    assert [record.articles for record in Manifest.read(index_dir).segments] == [("storm",)]
    assert sorted(p.name for p in index_dir.glob("seg-*")) == [Manifest.read(index_dir).segments[0].name]


def test_many_small_updates_are_merged_without_embedding_again(tmp_path: Path) -> None:
    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, STORIES)
    build_index(load_articles([folder]), embedder, index_dir)
    embedded = len(embedder.encoded)
    for name, text in EXTRA.items():  # one article per build, as feeds bring them
        write(folder, {name: text})
        index, _ = build_index(load_articles([folder]), embedder, index_dir)
        assert len(Manifest.read(index_dir).segments) <= MAX_SEGMENTS
    new_texts = embedder.encoded[embedded:]
    assert all("harbury" in text.lower() or "town news" in text.lower() for text in new_texts)
    # Each article embedded once: its passages and sentences, however often segments merged.
    one_shot = HashEmbedder()
    whole, _ = build_index(load_articles([folder]), one_shot, tmp_path / "whole")
    assert len(new_texts) == len(one_shot.encoded) - embedded
    assert set(index.articles) == set(whole.articles)
    assert sorted(p.id for p in index.passages) == sorted(p.id for p in whole.passages)
    for n in (0, MAX_SEGMENTS, MAX_SEGMENTS + 1):
        query = f"When does work on the quay of Harbury{n} start?"
        assert top(index, query, embedder) == top(whole, query, one_shot) == f"town-{n}"


def test_words_count_across_segments_as_in_one_index(tmp_path: Path) -> None:
    """A small new segment's rare words must weigh what they would in one index, or a fresh
    article loses to old ones on exactly the words that name it."""
    folder, embedder = tmp_path / "news", HashEmbedder()
    write(folder, STORIES)
    build_index(load_articles([folder]), embedder, tmp_path / "grown")
    write(folder, {"town-1": EXTRA["town-1"]})
    grown, _ = build_index(load_articles([folder]), embedder, tmp_path / "grown")
    whole, _ = build_index(load_articles([folder]), embedder, tmp_path / "whole")
    assert len(grown.segments) == 2 and len(whole.segments) == 1
    for term in tokenize(["council harbury1 quay storm budget the mayor"])[0]:
        assert grown.idf(term) == pytest.approx(whole.idf(term))
    query = "Harbury1 council quay"
    grown_scores = dict(zip((p.id for p in grown.passages), grown.lexical_scores(query), strict=True))
    whole_scores = dict(zip((p.id for p in whole.passages), whole.lexical_scores(query), strict=True))
    best = max(whole_scores, key=whole_scores.__getitem__)
    assert max(grown_scores, key=grown_scores.__getitem__) == best
    assert grown_scores[best] == pytest.approx(whole_scores[best], rel=0.25)


def test_a_reload_reads_only_the_segments_it_has_not_seen(tmp_path: Path) -> None:
    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, STORIES)
    running = load_index(*_built(folder, index_dir, embedder))
    write(folder, {"town-1": EXTRA["town-1"]})
    build_index(load_articles([folder]), embedder, index_dir)  # another process, say
    reloaded = load_index(index_dir, embedder, reuse=running)
    old, new = reloaded.segments
    assert old is running.segments[0] and new.name not in {s.name for s in running.segments}
    assert top(reloaded, "Harbury1 quay", embedder) == "town-1"


def _built(folder: Path, index_dir: Path, embedder: HashEmbedder) -> tuple[Path, HashEmbedder]:
    build_index(load_articles([folder]), embedder, index_dir)
    return index_dir, embedder


def test_the_console_says_when_another_process_changed_the_articles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    from rich.console import Console

    from bot.config import Config
    from bot.console import run_console
    from bot.engine import AnswerEngine

    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, STORIES)
    engine = AnswerEngine(
        Config(articles=(folder,), index_dir=index_dir),
        embedder=embedder,
        query_encoder=embedder,
        status=lambda message: None,
    )

    def typed() -> object:
        # While the console waits for its first question, another process adds an article.
        write(folder, {"town-1": EXTRA["town-1"]})
        build_index(load_articles([folder]), HashEmbedder(), index_dir)
        yield "When does work on the quay of Harbury1 start?\n"

    monkeypatch.setattr(
        sys, "stdin", type("Typed", (), {"isatty": lambda self: False, "__iter__": lambda self: typed()})()
    )
    shown = io.StringIO()
    run_console(engine, Console(file=shown, width=100, highlight=False))
    said = shown.getvalue()
    assert "articles changed: now 4 articles" in said
    assert said.index("articles changed") < said.index("Harbury1")


def test_a_start_over_unchanged_files_reads_none_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bot starting over a large archive used to read and hash every article file to learn the
    index was current; their sizes and modification times tell it as well."""
    import os

    from bot.config import Config
    from bot.engine import AnswerEngine
    from index import articles as article_files

    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, STORIES)
    build_index(load_articles([folder]), embedder, index_dir)
    config = Config(articles=(folder,), index_dir=index_dir)
    read: list[Path] = []
    real_read = article_files.read_article

    def counting_read(file: Path, *args: object) -> object:
        read.append(file)
        return real_read(file, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(article_files, "read_article", counting_read)
    engine = AnswerEngine(config, embedder=embedder, query_encoder=embedder, status=lambda message: None)
    assert set(engine.ensure_index().articles) == set(STORIES)
    assert read == []
    # One file changed (same size, a new time): every file is read, and only that one embedded.
    storm = folder / "storm.txt"
    storm.write_text(STORIES["storm"].replace("three", "seven"), encoding="utf-8")
    os.utime(storm, ns=(storm.stat().st_atime_ns, storm.stat().st_mtime_ns + 1_000_000))
    embedder.encoded.clear()
    index = AnswerEngine(
        config, embedder=embedder, query_encoder=embedder, status=lambda m: None
    ).ensure_index()
    changed = STORIES["storm"].replace("three", "seven")
    assert len(read) == 3 and embedder.encoded and all(text in changed for text in embedder.encoded)
    assert any("seven shelters" in p.text for p in index.passages)


def test_an_update_reads_only_the_files_that_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`articlebot add` of one story to an archive used to read and hash every article file."""
    from bot.config import Config
    from bot.engine import AnswerEngine
    from index import articles as article_files

    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, STORIES)
    config = Config(articles=(folder,), index_dir=index_dir)
    AnswerEngine(config, embedder=embedder, query_encoder=embedder, status=lambda m: None).build()
    read: list[str] = []
    real_read = article_files.read_article

    def counting_read(file: Path, *args: object) -> object:
        read.append(file.name)
        return real_read(file, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(article_files, "read_article", counting_read)
    write(folder, {"town-1": EXTRA["town-1"]})
    engine = AnswerEngine(config, embedder=embedder, query_encoder=embedder, status=lambda m: None)
    report = engine.build()
    assert read == ["town-1.txt"]
    assert (report.articles, report.embedded_articles) == (4, 1)
    assert set(engine.index.articles) == {*STORIES, "town-1"}
    # A rebuild reads everything, and loses nothing.
    read.clear()
    report = engine.build(rebuild=True)
    assert sorted(read) == sorted(f"{name}.txt" for name in [*STORIES, "town-1"])
    assert (report.articles, report.embedded_articles) == (4, 4)


async def test_button_references_are_worked_out_once_per_article(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A button press after an article arrived used to hash every passage id of the archive again."""
    from bot.config import Config, TelegramSettings
    from bot.engine import AnswerEngine
    from bot.telegram import services as services_module
    from bot.telegram.keyboards import PassageRefs, passage_ref
    from bot.telegram.limits import RequestLimiter
    from bot.telegram.services import BotServices

    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, STORIES)
    config = Config(articles=(folder,), index_dir=index_dir)
    engine = AnswerEngine(config, embedder=embedder, query_encoder=embedder, status=lambda m: None)
    engine.ensure_index()
    hashed: list[str] = []

    class CountingRefs(PassageRefs):
        def __init__(self, passage_ids: Iterable[str]) -> None:
            ids = list(passage_ids)
            hashed.extend(sorted({passage_id.split("#")[0] for passage_id in ids}))
            super().__init__(ids)

    monkeypatch.setattr(services_module, "PassageRefs", CountingRefs)
    services = BotServices(engine, TelegramSettings(), RequestLimiter(20))
    assert await services.resolve(passage_ref("storm#0")) == "storm#0"
    write(folder, {"town-1": EXTRA["town-1"]})
    build_index(load_articles([folder]), HashEmbedder(), index_dir)  # another process adds one
    assert await services.resolve(passage_ref("town-1#0")) == "town-1#0"
    assert await services.resolve(passage_ref("budget#0")) == "budget#0"
    assert await services.resolve(passage_ref("gone#0")) is None
    # Each article's ids were hashed once, not again after the reload; the new one's once.
    assert sorted(hashed) == sorted([*STORIES, "town-1"])


def test_the_manifest_names_the_largest_segments_dense_index_after_an_update(tmp_path: Path) -> None:
    """An update by a process that had not loaded the index used to record an IVF index as 'flat'."""
    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, STORIES)
    build_index(load_articles([folder]), embedder, index_dir, ann_threshold=1)
    assert Manifest.read(index_dir).dense_index.startswith("IVF")
    write(folder, {"town-1": EXTRA["town-1"]})
    build_index(load_articles([folder]), embedder, index_dir)  # a new, small, exact segment
    assert Manifest.read(index_dir).dense_index.startswith("IVF")


def test_a_loaded_index_reads_each_article_from_its_files_as_it_was(tmp_path: Path) -> None:
    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, STORIES)
    odd = "Title: Ереван — «Café» 😀\nDate: 2021-03-01\nURL: https://example.org/a\n\n"
    odd += "Pashinian spoke in Yerevan. Ünïcödé survives.\n\nA second paragraph — with 🇦🇲 flags."
    write(folder, {"accents": odd})
    read = {article.id: article for article in load_articles([folder])}
    build_index(list(read.values()), embedder, index_dir)

    loaded = load_index(index_dir, embedder)

    assert dict(loaded.articles) == read
    for passage in loaded.passages:
        assert passage.text == read[passage.article_id].text[passage.start : passage.end]


def test_an_article_table_pointing_past_its_texts_is_damage_not_a_wrong_answer(tmp_path: Path) -> None:
    import numpy as np

    from index.errors import IndexCorruptError
    from index.local.storage import read_segment

    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, STORIES)
    build_index(load_articles([folder]), embedder, index_dir)
    record = Manifest.read(index_dir).segments[0]
    table_file = index_dir / record.name / "articles.npy"
    table = np.load(table_file)
    table[-1, 3] += 1000
    np.save(table_file, table)

    with pytest.raises(IndexCorruptError, match="damaged"):
        read_segment(index_dir, record, embedder.dimension)


@pytest.mark.parametrize(
    ("old", "new"),
    [(b"Thousands", b"Hundreds!"), (b"mayor", b"\xff\xfeyor")],
    ids=["changed-words", "not-utf8"],
)
def test_a_damaged_text_in_a_large_archive_is_refused_when_read_never_quoted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: bytes, new: bytes
) -> None:
    from index.errors import IndexCorruptError
    from index.local import storage

    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, STORIES)
    build_index(load_articles([folder]), embedder, index_dir)
    texts = index_dir / Manifest.read(index_dir).segments[0].name / "texts.bin"
    texts.write_bytes(texts.read_bytes().replace(old, new))
    # Above this size a text file is not checksummed on load (a million passages carry 300 MB).
    monkeypatch.setattr(storage, "CHECKSUM_ON_LOAD_BYTES", 0)
    loaded = load_index(index_dir, embedder)

    assert loaded.articles["budget"].title == "Budget passes"  # the others still answer
    with pytest.raises(IndexCorruptError, match=r"damaged \(seg-[\w-]+, article \d: .*rebuild") as caught:
        loaded.articles["storm"]
    assert "\n" not in str(caught.value)


def test_pooled_passage_vectors_are_their_sentences_weighted_mean_and_no_passage_is_read(
    tmp_path: Path,
) -> None:
    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, STORIES)
    pooled = SplitSettings(vectors="pooled")
    index, _ = build_index(load_articles([folder]), embedder, index_dir, pooled)
    sentences = {sentence.text for sentence in index.sentences}
    assert set(embedder.encoded) == sentences  # the model read the sentences, not one passage
    assert any(passage.text not in sentences for passage in index.passages)
    for loaded in (index, load_index(index_dir, embedder)):
        for passage in loaded.passages:
            rows = loaded.sentence_rows(passage)
            weights = [embedder.count_tokens(loaded.sentences[row].text) + 2 for row in rows]
            expected = np.average(loaded.sentence_vectors[rows], axis=0, weights=weights)
            vector = loaded.passage_vectors[loaded.passages.index(passage)]
            assert np.allclose(vector, expected / np.linalg.norm(expected), atol=1e-5), passage.id
    assert top(index, "who won the cup final?", embedder, mode="dense") == "match"
    # Vectors made another way are made again for every article, as any change of passage shape.
    embedder.encoded.clear()
    _, report = build_index(load_articles([folder]), embedder, index_dir)
    assert report.embedded_articles == len(STORIES)
    assert {p.text for p in load_index(index_dir, embedder).passages} <= set(embedder.encoded)


def test_search_shortcuts_agree_with_the_plain_way_over_masked_segments(tmp_path: Path) -> None:
    """Search reads sentence rows from the tables, copies live BM25 rows in runs and picks BM25's
    best among the passages it scored: each must give what the plain way gives."""
    from index.local.search import _top

    folder, index_dir, embedder = tmp_path / "news", tmp_path / "index", HashEmbedder()
    write(folder, {**STORIES, **EXTRA})
    build_index(load_articles([folder]), embedder, index_dir)
    write(folder, {"late": "Title: Late news\n\nThe harbour bridge of Harbury2 reopened. Ferries stop."})
    for gone in ("budget", "town-3", "town-7"):
        (folder / f"{gone}.txt").unlink()
    index, _ = build_index(load_articles([folder]), embedder, index_dir)
    assert len(index.segments) == 2 and any(part.deleted for part in index._parts)

    for row, passage in enumerate(index.passages):
        assert list(index._sentence_rows_at(row)) == index.sentence_rows(passage)
    for query in ("bridge of Harbury2", "the council voted", "storm shelters"):
        idf = {term: index.idf(term) for term in set(tokenize([query])[0])}
        plain = [
            part.segment.lexical.scores_of(tokenize([query])[0], idf)[part.passage_rows]
            for part in index._parts
        ]
        assert np.array_equal(index.lexical_scores(query), np.concatenate(plain))

    rng = np.random.default_rng(7)
    for scored in (3, 40, 400):
        scores = np.zeros(1_000, dtype=np.float32)
        scores[rng.choice(1_000, scored, replace=False)] = rng.random(scored).astype(np.float32) + 0.1
        for k in (1, 10, 50):
            top = _top(scores, k)
            assert len(top) == k and len(set(top)) == k
            assert list(scores[top]) == sorted(scores, reverse=True)[:k]
