"""Shared fixtures: the real model, loaded once, and indexes built in temporary folders."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fake_bot_api import FakeBotApi
from news_site import NewsSite

from bot.config import BUNDLED_ARTICLES, Config, IngestSettings
from bot.engine import AnswerEngine
from index.embed import SentenceTransformerEmbedder

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the user's config or cache, or a token from the environment."""
    for name in list(os.environ):
        if name.startswith(("ARTICLEBOT_", "TELEGRAM_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any socket connection that leaves this machine."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in (
            "127.0.0.1",
            "::1",
            "localhost",
        ):
            raise OSError(f"test tried to reach {host!r}: only loopback is allowed")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The real all-MiniLM-L6-v2, loaded once for the whole run."""
    model = SentenceTransformerEmbedder("cpu")
    model.model  # noqa: B018 - load now, not inside the first test's timing
    return model


@pytest.fixture(scope="session")
def bundled_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return Config(articles=(BUNDLED_ARTICLES,), index_dir=tmp_path_factory.mktemp("bundled-index"))


@pytest.fixture(scope="session")
def engine(bundled_config: Config, embedder: SentenceTransformerEmbedder) -> Iterator[AnswerEngine]:
    """An engine over the bundled article, its index built once for the session."""
    engine = AnswerEngine(bundled_config, embedder=embedder, status=lambda message: None)
    engine.ensure_index()
    yield engine


@pytest.fixture(scope="session")
def two_articles(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[AnswerEngine]:
    """The bundled article and a SQuAD article about Super Bowl 50, in one index built once."""
    config = Config(
        articles=(BUNDLED_ARTICLES, Path(__file__).parent / "data" / "super-bowl-50.txt"),
        index_dir=tmp_path_factory.mktemp("two-index"),
    )
    engine = AnswerEngine(config, embedder=embedder, status=lambda message: None)
    engine.ensure_index()
    yield engine


@pytest.fixture
def news_site() -> Iterator[NewsSite]:
    """A news site on 127.0.0.1 for this test, stopped after it (tests/news_site.py shows how)."""
    with NewsSite() as site:
        yield site


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeBotApi]:
    """The fake Bot API on 127.0.0.1 (tests/fake_bot_api.py), for the real Application to talk to."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    async with FakeBotApi() as server:
        yield server


@pytest.fixture
def news_config(tmp_path: Path) -> Config:
    """A folder of one article (a bridge opens) to add to, its index, fetching from loopback allowed."""
    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "bridge.txt").write_text(
        "Title: Bridge opens\nDate: 2024-04-28\n\nThe new bridge over the Ellis opened on Sunday. "
        "It was designed by the engineer Mara Quint.",
        encoding="utf-8",
    )
    return Config(articles=(folder,), index_dir=tmp_path / "index", ingest=IngestSettings(allow_private=True))


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write in: without write permission, or, for root (whom
    permissions do not hold back), a read-only tmpfs where the machine lets it mount one."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    with _tmpfs(folder, "ro,size=1m"):
        yield folder


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB file system (tmpfs), where the machine lets this process mount one."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    with _tmpfs(mount_point, "size=2m"):
        yield mount_point


@contextmanager
def _tmpfs(folder: Path, options: str) -> Iterator[None]:
    """A tmpfs mounted at `folder` with these options while the block runs; else the test is skipped."""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)
