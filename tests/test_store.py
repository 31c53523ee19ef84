"""The persisted index: FAISS against brute force, round trips, updates, and damaged indexes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.config import Config
from bot.engine import AnswerEngine
from index.articles import load_articles
from index.embed import SentenceTransformerEmbedder
from index.errors import IndexCorruptError, IndexLocationError, IndexMismatchError, IndexWriteError
from index.local import storage
from index.local.bm25 import LexicalIndex
from index.local.build import build_index
from index.local.storage import load_index
from index.manifest import MANIFEST, Manifest
from index.split import SplitSettings
from index.store import SearchSettings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ARTICLEBOT = Path(sys.executable).parent / "articlebot"
# A build, run as its own process, that stops once its generation is written and before it
# replaces the manifest (the moment two builds can trip over each other), until told to go on.
PAUSED_BUILD = """
import sys
from pathlib import Path

from index.local import storage
from index.articles import load_articles
from index.local.build import build_index
from index.embed import SentenceTransformerEmbedder

replace_manifest = storage.atomic_write


def pause_then_replace(path, text):
    print("paused", flush=True)
    sys.stdin.readline()
    replace_manifest(path, text)


storage.atomic_write = pause_then_replace
build_index(load_articles([Path(sys.argv[1])]), SentenceTransformerEmbedder("cpu"), Path(sys.argv[2]))
"""

STORIES = {
    "storm.txt": "Title: Storm hits coast\nDate: 2024-05-02\n\nA storm hit the coast on Monday. "
    "Thousands lost power.\n\nThe mayor opened three shelters. Schools stay closed until Friday.",
    "budget.txt": "Title: Budget passes\n\nParliament passed the budget by 201 votes to 180. "
    "Taxes on fuel rise in July.\n\nThe opposition called it a betrayal of farmers.",
    "match.md": "# Late goal wins cup\n\nA header in the 93rd minute won the cup for the home side. "
    "Fans ran onto the pitch.",
}


class CountingEmbedder:
    """The real model, counting the texts it is asked to embed; it can be told to fail."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.encoded: list[str] = []
        self.fail = False

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if self.fail:
            raise RuntimeError("simulated crash while embedding")
        self.encoded.extend(texts)
        return self.inner.encode(texts, batch_size=batch_size)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


@pytest.fixture
def articles_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    folder.mkdir()
    for name, text in STORIES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def counting(embedder: SentenceTransformerEmbedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


def test_faiss_matches_brute_force_cosine(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder
) -> None:
    index, _ = build_index(load_articles([articles_dir]), counting, tmp_path / "index")
    norms = np.linalg.norm(index.passage_vectors, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    for question in ["who lost power?", "what happens to fuel taxes?", "who won the cup?"]:
        vector = counting.encode([question])[0]
        brute = index.passage_vectors @ vector
        hits = index.search(question, vector, k=len(index.passages), settings=SearchSettings(mode="dense"))
        assert [h.passage.id for h in hits] == [
            index.passages[i].id for i in np.argsort(-brute, kind="stable")
        ]
        assert np.allclose([h.dense for h in hits], np.sort(brute)[::-1], atol=1e-5)


def test_each_mode_finds_the_obvious_passage(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder
) -> None:
    index, _ = build_index(load_articles([articles_dir]), counting, tmp_path / "index")
    vector = counting.encode(["how many shelters did the mayor open?"])[0]
    for mode in ("hybrid", "dense", "lexical"):
        (best, *_) = index.search(
            "how many shelters did the mayor open?", vector, k=3, settings=SearchSettings(mode=mode)
        )
        assert "three shelters" in best.passage.text, mode
    with pytest.raises(ValueError, match=r"mode is 'fuzzy': use one of hybrid, dense, lexical"):
        index.search("x", vector, settings=SearchSettings(mode="fuzzy"))


def test_pooled_passage_vectors_from_the_real_model_stand_near_the_passages_own(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder
) -> None:
    index, _ = build_index(
        load_articles([articles_dir]), counting, tmp_path / "index", SplitSettings(vectors="pooled")
    )
    assert set(counting.encoded) == {sentence.text for sentence in index.sentences}
    encoded = counting.encode([passage.text for passage in index.passages])
    cosines = np.sum(encoded * index.passage_vectors, axis=1)
    assert cosines.min() > 0.85, cosines  # the mean of its sentences, read alone: .91-.98 here
    vector = counting.encode(["how many shelters did the mayor open?"])[0]
    for mode in ("hybrid", "dense"):
        (best, *_) = index.search(
            "how many shelters did the mayor open?", vector, k=1, settings=SearchSettings(mode=mode)
        )
        assert "three shelters" in best.passage.text, mode


def test_save_and_load_round_trip(articles_dir: Path, tmp_path: Path, counting: CountingEmbedder) -> None:
    built, report = build_index(load_articles([articles_dir]), counting, tmp_path / "index")
    loaded = load_index(tmp_path / "index", counting)
    assert report.articles == 3 and report.passages == len(built.passages) == len(loaded.passages)
    assert loaded.passages == built.passages
    assert loaded.sentences == built.sentences
    assert loaded.articles == built.articles
    assert np.array_equal(loaded.passage_vectors, built.passage_vectors)
    assert np.array_equal(loaded.sentence_vectors, built.sentence_vectors)
    vector = counting.encode(["fuel taxes"])[0]
    assert [h.passage.id for h in loaded.search("fuel taxes", vector)] == [
        h.passage.id for h in built.search("fuel taxes", vector)
    ]
    manifest = json.loads((tmp_path / "index" / MANIFEST).read_text())
    assert manifest["model"] == counting.model_name and manifest["dimension"] == 384
    assert manifest["passage_count"] == len(built.passages)
    assert set(manifest["articles"]) == {"storm", "budget", "match"}
    assert {"format_version", "built_at", "versions", "segments", "files"} <= set(manifest)
    assert [p.name for p in (tmp_path / "index").iterdir() if p.is_dir()] == [manifest["segments"][0]["name"]]


def test_every_index_file_follows_the_umask_so_a_service_account_can_read_it(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder
) -> None:
    previous = os.umask(0o022)
    try:
        build_index(load_articles([articles_dir]), counting, tmp_path / "index")
    finally:
        os.umask(previous)
    modes = {
        path.relative_to(tmp_path).as_posix(): stat.S_IMODE(path.stat().st_mode)
        for path in (tmp_path / "index").rglob("*")
        if path.is_file() and path.name != "build.lock"
    }
    assert modes and all(mode & 0o044 == 0o044 for mode in modes.values()), modes


def test_update_embeds_only_added_and_changed_articles(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder
) -> None:
    index_dir = tmp_path / "index"
    build_index(load_articles([articles_dir]), counting, index_dir)

    counting.encoded.clear()
    _, report = build_index(load_articles([articles_dir]), counting, index_dir)
    assert counting.encoded == [] and report.embedded_articles == 0

    (articles_dir / "budget.txt").write_text(
        "Title: Budget fails\n\nThe budget failed by one vote.", encoding="utf-8"
    )
    (articles_dir / "extra.txt").write_text("A new bridge opened in the north.", encoding="utf-8")
    (articles_dir / "match.md").unlink()
    counting.encoded.clear()
    index, report = build_index(load_articles([articles_dir]), counting, index_dir)
    assert (report.embedded_articles, report.removed_articles) == (2, 1)
    assert all("storm" not in text.lower() for text in counting.encoded)
    assert set(index.articles) == {"storm", "budget", "extra"}
    assert not any(p.article_id == "match" for p in index.passages)
    vector = counting.encode(["bridge"])[0]
    assert index.search("bridge", vector, k=1)[0].passage.article_id == "extra"
    # Reused vectors still sit beside their own passages.
    reloaded = load_index(index_dir, counting)
    fresh = counting.encode([p.text for p in reloaded.passages])
    assert np.allclose(np.sum(fresh * reloaded.passage_vectors, axis=1), 1.0, atol=1e-4)


def test_engine_updates_a_stale_index_and_says_so(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder
) -> None:
    messages: list[str] = []
    config = Config(articles=(articles_dir,), index_dir=tmp_path / "index")
    AnswerEngine(config, embedder=counting, status=messages.append).ensure_index()
    assert messages and "building" in messages[0]

    messages.clear()
    AnswerEngine(config, embedder=counting, status=messages.append).ensure_index()
    assert messages == []

    (articles_dir / "storm.txt").write_text("A flood hit the valley.", encoding="utf-8")
    engine = AnswerEngine(config, embedder=counting, status=messages.append)
    engine.ensure_index()
    assert messages and "updating" in messages[0]
    assert any("flood" in p.text for p in engine.index.passages)


def test_a_build_without_a_terminal_reports_long_articles_and_skipped_files_in_plain_lines(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.engine.LONG_ARTICLE_CHARS", 100)  # the storm and budget stories
    (articles_dir / "broken.txt").write_bytes(b"\0\0\0")
    messages: list[str] = []
    config = Config(articles=(articles_dir,), index_dir=tmp_path / "index")
    engine = AnswerEngine(config, embedder=counting, status=messages.append)
    engine.ensure_index()
    assert set(engine.index.articles) == {"storm", "budget", "match"}
    assert any(
        m.startswith("articlebot: skipped ") and "broken.txt: it holds NUL bytes" in m for m in messages
    )
    splitting = [m for m in messages if m.startswith("articlebot: splitting article")]
    assert len(splitting) == 2 and all("characters)" in m for m in splitting)


def test_a_skipped_file_is_said_when_indexing_once_and_not_before_every_question(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder
) -> None:
    (articles_dir / "utf16.txt").write_text("A story in UTF-16.", encoding="utf-16")
    messages: list[str] = []
    config = Config(articles=(articles_dir,), index_dir=tmp_path / "index")
    engine = AnswerEngine(config, embedder=counting, status=messages.append)
    engine.ensure_index()
    skipped = [m for m in messages if m.startswith("articlebot: skipped")]
    assert skipped == [f"articlebot: skipped {articles_dir / 'utf16.txt'}: it is UTF-16 text, not UTF-8; "
                       "save it as UTF-8 and try again"]  # fmt: skip
    engine.build()  # a console session updating its index says it no more
    assert [m for m in messages if m.startswith("articlebot: skipped")] == skipped
    # A later question (a new process) over the index as built says nothing of it.
    quiet: list[str] = []
    AnswerEngine(config, embedder=counting, status=quiet.append).ensure_index()
    assert quiet == []


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"model": "another/model"}, "was built with model 'another/model', not"),
        ({"format_version": 1}, "was built with format_version 1, not 3"),  # the format before segments
        ({"format_version": 2}, "was built with format_version 2, not 3"),  # texts in JSON lines
    ],
)
def test_an_index_built_another_way_is_refused_by_load_and_built_again_with_one_line(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder, change: dict[str, object], said: str
) -> None:
    index_dir = tmp_path / "index"
    build_index(load_articles([articles_dir]), counting, index_dir)
    manifest = json.loads((index_dir / MANIFEST).read_text())
    (index_dir / MANIFEST).write_text(json.dumps({**manifest, **change}))
    with pytest.raises(IndexMismatchError, match=rf"{re.escape(said)}.*--rebuild"):
        load_index(index_dir, counting)
    notices: list[str] = []
    index, report = build_index(load_articles([articles_dir]), counting, index_dir, on_notice=notices.append)
    [notice] = notices
    assert said in notice and notice.endswith(": building it again from scratch")
    assert report.embedded_articles == 3 and len(index.passages) > 0
    assert Manifest.read(index_dir).model == counting.model_name


@pytest.mark.parametrize(
    "damage",
    [
        lambda d, gen: (d / MANIFEST).write_text("{not json"),
        lambda d, gen: (d / MANIFEST).write_text("[1, 2]"),
        lambda d, gen: (gen / "passage_vectors.npy").unlink(),
        lambda d, gen: (gen / "passages.faiss").write_bytes(b"garbage"),
        lambda d, gen: np.save(gen / "passages.npy", np.zeros((1, 6), np.int32)),
        lambda d, gen: np.save(gen / "sentence_vectors.npy", np.zeros((2, 384), np.float32)),
        # Hardening: bytes changed in place keep every size right; an emptied .npy was an EOFError.
        lambda d, gen: _flip_a_byte(gen / "passage_vectors.npy"),
        lambda d, gen: _flip_a_byte(gen / "passages.faiss"),
        lambda d, gen: _flip_a_byte(next((gen / "lexical").rglob("*.npy"))),
        lambda d, gen: (gen / "sentence_vectors.npy").write_bytes(b""),
    ],
    ids=[
        "manifest-json",
        "manifest-type",
        "vectors-missing",
        "faiss-garbage",
        "passages-bad",
        "sizes-disagree",
        "vectors-bytes-changed",
        "faiss-bytes-changed",
        "bm25-bytes-changed",
        "npy-emptied",
    ],
)
def test_corrupt_index_is_refused_with_the_fix(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder, damage
) -> None:  # type: ignore[no-untyped-def]
    index_dir = tmp_path / "index"
    build_index(load_articles([articles_dir]), counting, index_dir)
    generation = index_dir / json.loads((index_dir / MANIFEST).read_text())["segments"][0]["name"]
    damage(index_dir, generation)
    with pytest.raises(IndexCorruptError, match="rebuild") as caught:
        load_index(index_dir, counting)
    assert "\n" not in str(caught.value)
    build_index(load_articles([articles_dir]), counting, index_dir, rebuild=True)
    assert len(load_index(index_dir, counting).passages) > 0


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x5A
    path.write_bytes(bytes(data))


def test_index_check_verifies_every_checksum(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder
) -> None:
    index_dir = tmp_path / "index"
    build_index(load_articles([articles_dir]), counting, index_dir)
    manifest = Manifest.read(index_dir)
    assert storage.verify_files(index_dir, manifest, every_checksum=True) == len(manifest.files) >= 6
    # A file too large to checksum on every load is still caught by the full check.
    _flip_a_byte(index_dir / manifest.segments[0].name / "passage_vectors.npy")
    with pytest.raises(IndexCorruptError, match=r"passage_vectors\.npy has changed"):
        storage.verify_files(index_dir, manifest, every_checksum=True)


def test_a_folder_that_is_not_an_index_is_refused_never_emptied(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder
) -> None:
    folder = tmp_path / "my-documents"
    (folder / "gen-notes").mkdir(parents=True)
    (folder / "gen-notes" / "draft.txt").write_text("mine", encoding="utf-8")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    with pytest.raises(IndexLocationError, match=r"not an articlebot index \(gen-notes, photo\.jpg\)"):
        build_index(load_articles([articles_dir]), counting, folder, rebuild=True)
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_a_folder_of_only_index_like_names_without_our_lock_or_manifest_is_left_untouched(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder
) -> None:
    """Names are not proof: a user's folders called like segments or generations, and a
    manifest.json of their own, are not an index articlebot built."""
    folder = tmp_path / "backups"
    (folder / "gen-20240101T000000-1-1").mkdir(parents=True)
    (folder / "gen-20240101T000000-1-1" / "data.txt").write_text("mine", encoding="utf-8")
    (folder / "seg-20240102T000000-1-1").mkdir()
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    with pytest.raises(IndexLocationError, match=r"not an articlebot index \(gen-20240101T000000-1-1, seg-"):
        build_index(load_articles([articles_dir]), counting, folder, rebuild=True)
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    (folder / MANIFEST).write_text('{"name": "my web app", "icons": []}', encoding="utf-8")
    with pytest.raises(IndexLocationError, match="not an articlebot index"):
        build_index(load_articles([articles_dir]), counting, folder, rebuild=True)
    assert (folder / "gen-20240101T000000-1-1" / "data.txt").read_text(encoding="utf-8") == "mine"
    assert json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["name"] == "my web app"


def test_a_first_build_that_died_is_cleaned_up_by_the_next(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder
) -> None:
    """Its lock file, taken before anything was written, says the folder is an index."""
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    (index_dir / "build.lock").write_text("12345\n", encoding="utf-8")
    (index_dir / "seg-20200101T000000-1-1").mkdir()  # killed while saving, before any manifest
    (index_dir / "seg-20200101T000000-1-1" / "passages.npy").write_bytes(b"\x93NUMPY")
    build_index(load_articles([articles_dir]), counting, index_dir)
    assert sorted(p.name for p in index_dir.iterdir()) == sorted(
        [MANIFEST, "build.lock", *named_segments(index_dir)]
    )


def test_a_read_only_folder_and_a_file_in_the_way_each_get_their_own_line(
    articles_dir: Path, tmp_path: Path, read_only_folder: Path, counting: CountingEmbedder
) -> None:
    articles = load_articles([articles_dir])
    with pytest.raises(IndexWriteError, match=r"read-only file system|no permission to write") as caught:
        build_index(articles, counting, read_only_folder / "index")
    assert "\n" not in str(caught.value) and "disk is full" not in str(caught.value)
    in_the_way = tmp_path / "index"
    in_the_way.write_text("not a folder", encoding="utf-8")
    with pytest.raises(IndexLocationError, match=r"index is a file, not a folder"):
        build_index(articles, counting, in_the_way)
    with pytest.raises(IndexLocationError, match=rf"{re.escape(str(in_the_way))} is a file, not a folder"):
        build_index(articles, counting, in_the_way / "sub" / "index")
    assert in_the_way.read_text(encoding="utf-8") == "not a folder"


def test_what_an_unfinished_build_left_is_removed_by_the_next(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder
) -> None:
    index_dir = tmp_path / "index"
    build_index(load_articles([articles_dir]), counting, index_dir)
    current = named_segments(index_dir)
    (index_dir / "seg-20200101T000000-1-1").mkdir()  # a build killed while saving
    (index_dir / "gen-20200101T000000-1-2").mkdir()  # an older format's generation
    (index_dir / f".{MANIFEST}.x1y2.tmp").write_text("{", encoding="utf-8")  # killed mid-manifest
    (index_dir / "seg-keep-mine").mkdir()  # not a name articlebot gives: never touched
    build_index(load_articles([articles_dir]), counting, index_dir, rebuild=True)
    latest = named_segments(index_dir)
    assert latest != current
    assert sorted(p.name for p in index_dir.iterdir()) == sorted(
        [MANIFEST, "build.lock", *latest, "seg-keep-mine"]
    )


def test_a_full_disk_is_one_line_and_leaves_the_old_index_answering(
    articles_dir: Path, small_disk: Path, counting: CountingEmbedder
) -> None:
    index_dir = small_disk / "index"
    articles = load_articles([articles_dir])
    build_index(articles, counting, index_dir)
    before = named_segments(index_dir)
    # Fill the disk so a second segment cannot fit.
    filler = small_disk / "filler"
    with filler.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 4096)
        except OSError:
            pass
    filler.write_bytes(b"\0" * (filler.stat().st_size - 20_000))  # leave room for part of one
    for _ in range(3):  # retries add nothing
        with pytest.raises(IndexWriteError, match="the disk is full") as caught:
            build_index(articles, counting, index_dir, rebuild=True)
        assert "\n" not in str(caught.value)
        assert segments_on_disk(index_dir) == before
    assert len(load_index(index_dir, counting).passages) > 0
    filler.unlink()
    build_index(articles, counting, index_dir, rebuild=True)
    assert len(segments_on_disk(index_dir)) == 1


def test_interrupted_build_leaves_the_previous_index_usable(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_dir = tmp_path / "index"
    before, _ = build_index(load_articles([articles_dir]), counting, index_dir)
    (articles_dir / "extra.txt").write_text("A new bridge opened in the north.", encoding="utf-8")

    counting.fail = True
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_index(load_articles([articles_dir]), counting, index_dir)
    counting.fail = False

    def crash_while_saving(self: LexicalIndex, folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "half-written").write_text("x")
        raise OSError("disk full")

    monkeypatch.setattr(LexicalIndex, "save", crash_while_saving)
    with pytest.raises(IndexWriteError, match="disk full"):
        build_index(load_articles([articles_dir]), counting, index_dir)
    monkeypatch.undo()
    assert segments_on_disk(index_dir) == named_segments(index_dir)  # the half-written one is gone at once

    survivor = load_index(index_dir, counting)
    assert survivor.passages == before.passages
    # The next good build finishes the job: the new article in a segment of its own.
    build_index(load_articles([articles_dir]), counting, index_dir)
    assert len(segments_on_disk(index_dir)) == 2 and segments_on_disk(index_dir) == named_segments(index_dir)
    assert "extra" in load_index(index_dir, counting).articles


HOLD_THE_LOCK = """
import sys, time
from pathlib import Path

from index.local.build import build_lock

with build_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def named_segments(index_dir: Path) -> list[str]:
    """The segments the saved manifest names."""
    return sorted(record["name"] for record in json.loads((index_dir / MANIFEST).read_text())["segments"])


def segments_on_disk(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.iterdir() if p.is_dir() and p.name.startswith("seg-"))


def _environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


async def test_two_builds_at_once_leave_a_whole_index(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder
) -> None:
    """`articlebot index` while another build of the same folder is half done (a cron job beside
    the bot's own update). Both used to exit 0 with the manifest naming a generation the other
    build had deleted; now the second waits for the first, says so, and then updates."""
    index_dir = tmp_path / "index"
    build_index(load_articles([articles_dir]), counting, index_dir)
    (articles_dir / "extra.txt").write_text("A new bridge opened in the north.", encoding="utf-8")
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PAUSED_BUILD, str(articles_dir), str(index_dir),
        cwd=ROOT, env=_environment(),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    second = None
    try:
        assert first.stdin is not None and first.stdout is not None
        assert await asyncio.wait_for(first.stdout.readline(), 300) == b"paused\n"
        second = await asyncio.create_subprocess_exec(
            str(ARTICLEBOT), "index", str(articles_dir), "--index-dir", str(index_dir),
            env=_environment(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert second.stderr is not None
        said = b""
        # Until the second build says it waits, or ends (as it did without a lock).
        while line := await asyncio.wait_for(second.stderr.readline(), 300):
            said += line
            if b"another build" in line:
                break
        first.stdin.write(b"go on\n")
        await first.stdin.drain()
        _, first_err = await asyncio.wait_for(first.communicate(), 300)
        second_out, second_err = await asyncio.wait_for(second.communicate(), 300)
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
    assert first.returncode == 0, first_err.decode()
    assert second.returncode == 0, (said + second_err).decode()
    index = load_index(index_dir, counting)  # not "damaged"
    assert set(index.articles) == {"storm", "budget", "match", "extra"}
    assert index.manifest is not None
    assert segments_on_disk(index_dir) == sorted(record.name for record in index.manifest.segments)
    assert f"articlebot: another build of the index at {index_dir} is running" in said.decode()
    assert second_out.decode().startswith("indexed 4 articles")


def test_a_reader_retries_once_when_a_build_replaces_the_index_under_it(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ask` reading the manifest just as a build replaces it used to report a healthy index as
    damaged: the segment it had just read about was gone (merged, or rebuilt)."""
    index_dir = tmp_path / "index"
    build_index(load_articles([articles_dir]), counting, index_dir)
    (articles_dir / "extra.txt").write_text("A new bridge opened in the north.", encoding="utf-8")
    read_manifest = Manifest.read
    swapped: list[str] = []

    def read_then_rebuild(directory: Path) -> Manifest:
        manifest = read_manifest(directory)
        if not swapped:
            swapped.append(manifest.segments[0].name)
            # A real build, between the reader's look at the manifest and its reading the files.
            build_index(load_articles([articles_dir]), counting, index_dir, rebuild=True)
        return manifest

    monkeypatch.setattr(Manifest, "read", staticmethod(read_then_rebuild))
    index = load_index(index_dir, counting)
    assert not (index_dir / swapped[0]).exists()  # the segment it first read about is gone
    assert "extra" in index.articles
    assert index.manifest is not None
    assert sorted(record.name for record in index.manifest.segments) == named_segments(index_dir)


def test_a_build_killed_while_holding_the_lock_leaves_none_behind(
    articles_dir: Path, tmp_path: Path, counting: CountingEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    index_dir = tmp_path / "index"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(index_dir)],
        cwd=ROOT, env=_environment(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        holder.send_signal(signal.SIGKILL)  # no chance to clean up
        holder.wait(60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    index, _ = build_index(load_articles([articles_dir]), counting, index_dir)
    assert len(index.passages) > 0
    assert "another build" not in caplog.text
