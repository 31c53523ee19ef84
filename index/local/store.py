"""The local store behind the `Store` interface: an index folder on this machine."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from index.articles import Article, KnownArticle
from index.embed import Embedder
from index.local.build import build_index
from index.local.search import PassageIndex
from index.local.storage import load_index, verify_files
from index.manifest import MANIFEST, Manifest
from index.split import SplitSettings
from index.store import DEFAULT_ANN_THRESHOLD, BuildReport, SearchIndex


class LocalStore:
    """An index folder: segments that never change, and a manifest replaced last by a rename."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir

    @property
    def location(self) -> str:
        return str(self.index_dir)

    def read_manifest(self) -> Manifest:
        return Manifest.read(self.index_dir)

    def identity(self) -> tuple[int, int, int] | None:
        """The manifest file's inode, time and size: a build replaces it by a rename, last."""
        try:
            stat = os.stat(self.index_dir / MANIFEST)
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def load(self, embedder: Embedder, reuse: SearchIndex | None = None) -> PassageIndex:
        return load_index(self.index_dir, embedder, reuse if isinstance(reuse, PassageIndex) else None)

    def build(
        self,
        articles: Sequence[Article | KnownArticle],
        embedder: Embedder,
        settings: SplitSettings,
        *,
        rebuild: bool = False,
        progress: bool = False,
        on_article: Callable[[Article], None] | None = None,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        on_notice: Callable[[str], None] | None = None,
        reuse: SearchIndex | None = None,
    ) -> tuple[PassageIndex, BuildReport]:
        return build_index(
            articles,
            embedder,
            self.index_dir,
            settings,
            rebuild=rebuild,
            progress=progress,
            on_article=on_article,
            ann_threshold=ann_threshold,
            on_notice=on_notice,
            reuse=reuse if isinstance(reuse, PassageIndex) else None,
        )

    def check(self) -> str:
        checked = verify_files(self.index_dir, self.read_manifest(), every_checksum=True)
        return f"the index at {self.index_dir} is whole: {checked} files match their checksums"
