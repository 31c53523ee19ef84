"""The manifest: what an index folder holds, how it was built, and from which articles.

One frozen value, read from and written to `manifest.json` in one place. It answers the two
questions every caller asks of a saved index: can this process use it (`check_compatible`: the
format, model and dimension match), and does it still match the articles (`is_current`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from index.articles import Article
from index.errors import IndexCorruptError, IndexMismatchError
from index.split import SplitSettings

# 2: the index is segments (one per build that embedded something), articles masked in place.
# 3: article texts in one memory-mapped file per segment, metadata read line by line when asked for.
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
REBUILD = "rebuild with 'articlebot index --rebuild'"


class _Model(Protocol):
    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...


@dataclass(frozen=True)
class FileRecord:
    """One file of a generation, as it was written."""

    size: int
    sha256: str


@dataclass(frozen=True)
class SegmentRecord:
    """One segment of the index: its folder, the articles written into it, and which of those
    have since been removed or replaced (masked, until a merge drops them)."""

    name: str
    articles: tuple[str, ...]
    passages: int
    sentences: int
    deleted: tuple[str, ...] = ()

    @property
    def live(self) -> int:
        return len(self.articles) - len(self.deleted)

    def masking(self, gone: Collection[str]) -> SegmentRecord:
        """This record with the articles in `gone` that it holds masked too."""
        now = sorted({*self.deleted, *(article for article in self.articles if article in gone)})
        return dataclasses.replace(self, deleted=tuple(now))


@dataclass(frozen=True)
class Manifest:
    """What was built, how, and from which articles; `generation` and `files` once saved."""

    model: str
    dimension: int
    # Article id -> content hash: a changed article has another hash.
    articles: Mapping[str, str]
    split: SplitSettings
    # Stored in the segments, masked ones included (the index counts its live ones).
    passage_count: int
    sentence_count: int
    # The largest segment's dense index: 'flat', or its IVF factory string.
    dense_index: str
    built_at: str
    versions: Mapping[str, str] = field(default_factory=dict)
    segments: tuple[SegmentRecord, ...] = ()
    # Each article file's size and modification time when it was read: a bot starting over an
    # archive can tell the index is current from these alone, without reading every file.
    sources: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # Every file of every segment, by its path in the index folder.
    files: Mapping[str, FileRecord] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    # Questions asked of it -----------------------------------------------------------------------

    def check_compatible(self, model: _Model, index_dir: Path) -> None:
        """Refuse an index built by another format, model or dimension, saying which."""
        for key, mine, wanted in (
            ("format_version", self.format_version, FORMAT_VERSION),
            ("model", self.model, model.model_name),
            ("dimension", self.dimension, model.dimension),
        ):
            if mine != wanted:
                raise IndexMismatchError(
                    f"the index at {index_dir} was built with {key} {mine!r}, not {wanted!r}: "
                    "rebuild it with 'articlebot index --rebuild'"
                )

    def is_current(self, articles: Sequence[Article], split: SplitSettings) -> bool:
        """True when it was built from exactly these articles, split this way."""
        return self.split == split and dict(self.articles) == {a.id: a.content_hash for a in articles}

    # JSON --------------------------------------------------------------------------------------

    def to_json(self) -> str:
        """Compact JSON. An archive's manifest names every article twice (its hash and its file's
        signature): at 90,000 articles `dataclasses.asdict` and `indent` (which turns off json's C
        encoder) took 9 s of every update, this takes a tenth of a second."""
        data = _fields(self)
        data["split"] = _fields(self.split)
        data["segments"] = [_fields(record) for record in self.segments]
        data["files"] = {name: _fields(record) for name, record in self.files.items()}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, path: Path) -> Manifest:
        """The manifest in `text`; IndexMismatchError for another format, IndexCorruptError for damage."""
        try:
            data = json.loads(text)
        except ValueError as error:
            raise _damaged(path, f"cannot be read ({error})") from None
        if not isinstance(data, dict):
            raise _damaged(path, "is not a JSON object")
        if data.get("format_version") != FORMAT_VERSION:
            raise IndexMismatchError(
                f"the index at {path.parent} was built with format_version {data.get('format_version')!r}, "
                f"not {FORMAT_VERSION}: {REBUILD}"
            )
        try:
            return cls(
                **{
                    **_known(cls, data),
                    "split": SplitSettings(**data["split"]),
                    "segments": tuple(
                        SegmentRecord(
                            **{
                                **record,
                                "articles": tuple(record["articles"]),
                                "deleted": tuple(record.get("deleted", ())),
                            }
                        )
                        for record in data["segments"]
                    ),
                    "files": {name: FileRecord(**record) for name, record in data.get("files", {}).items()},
                    "sources": {
                        path: (int(size), int(mtime))
                        for path, (size, mtime) in data.get("sources", {}).items()
                    },
                }
            )
        except (KeyError, TypeError, ValueError) as error:
            raise _damaged(path, f"is incomplete ({error!r})") from None

    @classmethod
    def read(cls, index_dir: Path) -> Manifest:
        """The manifest of the index at `index_dir`; FileNotFoundError when there is none.

        The last one read is kept while its file is the same (inode, time and size: a build replaces
        the manifest by a rename, never in place): a start reads it to check the articles, then to
        load, and at a hundred thousand articles each parse costs a fifth of a second.
        """
        global _last_read
        path = index_dir / MANIFEST
        try:
            with path.open("rb") as file:
                stat = os.fstat(file.fileno())
                identity = (str(path.absolute()), stat.st_ino, stat.st_mtime_ns, stat.st_size)
                if _last_read is not None and _last_read[0] == identity:
                    return _last_read[1]
                text = file.read().decode("utf-8")
        except FileNotFoundError:
            raise
        except (OSError, UnicodeDecodeError) as error:
            raise _damaged(path, f"cannot be read ({error})") from None
        manifest = cls.from_json(text, path)
        _last_read = (identity, manifest)
        return manifest


_last_read: tuple[tuple[str, int, int, int], Manifest] | None = None


def _fields(value: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, shallow (`dataclasses.asdict` copies every tuple item)."""
    return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}


def _damaged(path: Path, what: str) -> IndexCorruptError:
    return IndexCorruptError(f"the index manifest {path} {what}: {REBUILD}")


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {key: value for key, value in data.items() if key in names}


def index_is_current(index_dir: Path, articles: Sequence[Article], settings: SplitSettings) -> bool:
    """True when the saved manifest matches these articles and passage settings exactly."""
    try:
        return Manifest.read(index_dir).is_current(articles, settings)
    except (IndexCorruptError, IndexMismatchError, FileNotFoundError):
        return False
