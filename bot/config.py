"""Configuration: one frozen value from TOML, environment overrides, checked at start-up."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bot.answer import AnswerSettings
from bot.conversation import ConversationSettings
from index.articles import ARTICLE_SUFFIXES
from index.errors import ArticlebotError
from index.split import SplitSettings
from index.store import SearchSettings

BUNDLED_ARTICLES = Path(__file__).parent / "articles"
DEVICES = ("cpu", "cuda", "auto")
QUERY_ENCODERS = ("fast", "sentence-transformers")
_S = TypeVar("_S")
# What Telegram accepts as a webhook's secret_token.
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class ConfigError(ArticlebotError):
    """The configuration file or an environment variable holds a value that cannot work."""


@dataclass(frozen=True)
class TelegramSettings:
    """The `[telegram]` section: how the bot reaches Telegram and whom it serves."""

    token: str | None = field(default=None, repr=False)
    api_base_url: str | None = None
    mode: str = "polling"
    # Loopback: the webhook is meant to sit behind a TLS-terminating proxy on the same machine.
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    questions_per_minute: int = 20
    allowed_ids: tuple[int, ...] = ()
    refuse_silently: bool = False
    # People who may add articles (a link or a document in a private chat) and /remove them.
    admin_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class IngestSettings:
    """The `[ingest]` section: how articles arrive from the web."""

    # How often the running bot and `articlebot follow` poll the feeds.
    poll_minutes: float = 30.0
    # The newest this many articles from feeds are kept; older ones leave the folder and the index.
    max_articles: int = 200
    # Fetch from loopback, private and link-local addresses too (a newsroom's intranet, tests).
    allow_private: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.poll_minutes <= 7 * 24 * 60:
            raise ValueError(f"poll_minutes is {self.poll_minutes:g}: use 1 to 10080 (a week)")
        if self.max_articles < 1:
            raise ValueError(f"max_articles is {self.max_articles}: use 1 or more")


@dataclass(frozen=True)
class ModelSettings:
    """The `[model]` section: where the model runs and how questions are encoded."""

    device: str = "cpu"
    # Questions: the torch-free encoder of the same model, or sentence-transformers itself.
    query_encoder: str = "fast"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device is {self.device!r}: use one of {', '.join(DEVICES)}")
        if self.query_encoder not in QUERY_ENCODERS:
            raise ValueError(
                f"query_encoder is {self.query_encoder!r}: use one of {', '.join(QUERY_ENCODERS)}"
            )


BACKENDS = ("local", "milvus")
MILVUS_FUSIONS = ("standardised", "weighted", "rrf")


@dataclass(frozen=True)
class IndexSettings:
    """The `[index]` section: which engine holds the index, and where."""

    # "local": FAISS and BM25 segments in index_dir; "milvus": a Milvus collection.
    backend: str = "local"
    # A file path: Milvus Lite, in-process (None: milvus.db in index_dir); "http(s)://host:19530":
    # a Milvus server or cluster.
    milvus_uri: str | None = None
    milvus_collection: str = "articlebot"
    milvus_token: str | None = field(default=None, repr=False)
    # How Milvus's dense and BM25 candidates are fused: "standardised" (as the local store does),
    # or Milvus's own "weighted" or "rrf" ranker, server-side (measured: docs/milvus.md).
    milvus_fusion: str = "standardised"

    def __post_init__(self) -> None:
        if self.milvus_fusion not in MILVUS_FUSIONS:
            raise ValueError(
                f"milvus_fusion is {self.milvus_fusion!r}: use one of {', '.join(MILVUS_FUSIONS)}"
            )
        if self.backend not in BACKENDS:
            raise ValueError(f"backend is {self.backend!r}: use one of {', '.join(BACKENDS)}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,199}", self.milvus_collection):
            raise ValueError(
                f"milvus_collection is {self.milvus_collection!r}: use letters, digits and _, "
                "starting with a letter or _ (Milvus's rule for collection names)"
            )


@dataclass(frozen=True)
class Config:
    """Everything the bot is told; defaults serve the bundled article."""

    articles: tuple[Path, ...] = (BUNDLED_ARTICLES,)
    # Larger article files are skipped with a warning.
    max_article_mb: float = 5.0
    index_dir: Path = field(default_factory=lambda: default_index_dir())
    # The sections: each default is written once, in its own class.
    search: SearchSettings = field(default_factory=SearchSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    passages: SplitSettings = field(default_factory=SplitSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    # News feeds (RSS or Atom URLs) polled for new articles.
    feeds: tuple[str, ...] = ()
    ingest: IngestSettings = field(default_factory=IngestSettings)
    conversation: ConversationSettings = field(default_factory=ConversationSettings)
    # Where `articlebot add` saves articles when only the bundled article is configured.
    user_articles: Path = field(default_factory=lambda: default_user_articles_dir())

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    @property
    def serves_bundled_only(self) -> bool:
        return self.articles == (BUNDLED_ARTICLES,)

    def article_paths(self) -> tuple[Path, ...]:
        """What the index is built from, now: the configured articles, and with the bundled
        article alone the user's articles folder too, once `articlebot add` has put one there."""
        if self.serves_bundled_only and _holds_articles(self.user_articles):
            return (*self.articles, self.user_articles)
        return self.articles

    def add_folder(self) -> Path | None:
        """Where `articlebot add` saves: the first configured folder, or the user's articles folder
        when only the bundled article is configured; None when only files are configured."""
        if self.serves_bundled_only:
            return self.user_articles
        return next((path for path in self.articles if path.is_dir()), None)


def default_index_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_CACHE_HOME/articlebot/index, or ~/.cache/articlebot/index."""
    cache = (os.environ if environ is None else environ).get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "articlebot" / "index"


def default_user_articles_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_DATA_HOME/articlebot/articles, or ~/.local/share/articlebot/articles."""
    environ = os.environ if environ is None else environ
    data = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "articlebot" / "articles"


def _holds_articles(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(
            path.suffix.lower() in ARTICLE_SUFFIXES for path in folder.iterdir() if path.is_file()
        )
    except OSError:
        return False


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read `path` (or $ARTICLEBOT_CONFIG), apply the environment, and check every value."""
    environ = dict(os.environ) if environ is None else environ
    path = path or environ.get("ARTICLEBOT_CONFIG") or None
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        config_path = Path(path).expanduser()
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {config_path}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read config file {config_path}: {error}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{config_path} is not valid TOML: {error}") from None
        base = config_path.resolve().parent
    return _from_mapping(data, base, environ)


def _from_mapping(data: dict[str, Any], base: Path, environ: dict[str, str]) -> Config:
    reader = _Reader(data)
    articles = reader.get("articles", list, None)
    if "ARTICLEBOT_ARTICLES" in environ:
        articles = [p for p in environ["ARTICLEBOT_ARTICLES"].split(os.pathsep) if p]
    if articles is not None and not all(isinstance(item, str) for item in articles):
        raise ConfigError('articles must be a list of file or folder paths, e.g. articles = ["news/"]')
    if articles is not None and not articles:
        # An empty list is a mistake, not a wish for the bundled article: leave the key out for that.
        source = "ARTICLEBOT_ARTICLES" if "ARTICLEBOT_ARTICLES" in environ else "articles"
        raise ConfigError(f"{source} names no article file or folder: name at least one, or leave it unset")
    index_dir = _override(environ, "ARTICLEBOT_INDEX_DIR", reader.get("index_dir", str, None))

    search = _Reader(reader.get("search", dict, {}), "search.")
    answer = _Reader(reader.get("answer", dict, {}), "answer.")
    model = _Reader(reader.get("model", dict, {}), "model.")
    passages = _Reader(reader.get("passages", dict, {}), "passages.")
    telegram = _Reader(reader.get("telegram", dict, {}), "telegram.")
    ingest = _Reader(reader.get("ingest", dict, {}), "ingest.")
    conversation = _Reader(reader.get("conversation", dict, {}), "conversation.")
    index = _Reader(reader.get("index", dict, {}), "index.")
    feeds = reader.get("feeds", list, [])
    if not all(isinstance(item, str) and item.strip() for item in feeds):
        raise ConfigError('feeds must be a list of feed URLs, e.g. feeds = ["https://example.org/rss"]')
    config = Config(
        articles=tuple(_resolve(p, base) for p in articles) if articles else (BUNDLED_ARTICLES,),
        index_dir=_resolve(index_dir, base) if index_dir else default_index_dir(environ),
        max_article_mb=reader.get("max_article_mb", float, Config.max_article_mb),
        search=_section(
            search, SearchSettings, ("top_k", "mode", "dense_weight", "lexical_weight", "ann_threshold")
        ),
        answer=_section(answer, AnswerSettings, ("abstain_threshold", "reader")),
        model=_section(
            model,
            ModelSettings,
            ("device", "query_encoder"),
            device=environ.get("ARTICLEBOT_DEVICE"),
            query_encoder=environ.get("ARTICLEBOT_QUERY_ENCODER"),
        ),
        passages=_section(
            passages,
            SplitSettings,
            ("max_sentences", "max_words", "stride", "cross_paragraphs", "vectors"),
        ),
        telegram=_telegram(telegram, environ),
        feeds=tuple(dict.fromkeys(feed.strip() for feed in feeds)),
        ingest=_section(ingest, IngestSettings, ("poll_minutes", "max_articles", "allow_private")),
        conversation=_section(
            conversation, ConversationSettings, ("max_turns", "idle_minutes", "max_conversations")
        ),
        index=_index(index, base, environ),
        user_articles=default_user_articles_dir(environ),
    )
    for reader_ in (reader, search, answer, model, passages, telegram, ingest, conversation, index):
        reader_.reject_unknown()
    validate(config)
    return config


def _section(table: _Reader, kind: type[_S], keys: Sequence[str], **environment: str | None) -> _S:
    """One section's settings: each key read as the type of its default (the class holds the
    defaults and checks the values); a value from the environment wins over the file's."""
    defaults = kind()
    values = {key: table.get(key, type(getattr(defaults, key)), getattr(defaults, key)) for key in keys}
    values.update({key: value for key, value in environment.items() if value})
    try:
        return kind(**values)
    except ValueError as error:
        raise ConfigError(f"{table.prefix}{error}") from None


def _index(section: _Reader, base: Path, environ: dict[str, str]) -> IndexSettings:
    d = IndexSettings()
    uri = section.get("milvus_uri", str, None)
    if uri is not None and not uri.strip():
        raise ConfigError("index.milvus_uri is empty: name a file (Milvus Lite) or http://host:19530")
    if uri is not None and "://" not in uri:
        if not uri.endswith(".db"):
            raise ConfigError(f"index.milvus_uri is {uri!r}: a Milvus Lite file's name ends in .db")
        uri = str(_resolve(uri, base))  # a Milvus Lite file, relative to the config file
    token = _override(environ, "ARTICLEBOT_MILVUS_TOKEN", section.get("milvus_token", str, None))
    try:
        return IndexSettings(
            backend=section.get("backend", str, d.backend),
            milvus_uri=uri,
            milvus_collection=section.get("milvus_collection", str, d.milvus_collection),
            milvus_token=token or None,
            milvus_fusion=section.get("milvus_fusion", str, d.milvus_fusion),
        )
    except ValueError as error:
        raise ConfigError(f"index.{error}") from None


def _telegram(section: _Reader, environ: dict[str, str]) -> TelegramSettings:
    d = TelegramSettings()
    allowed = _ids(section, "allowed_ids", "user or chat ids")
    admins = _ids(section, "admin_ids", "user ids")
    # Empty means unset, as for the token: webhook mode then makes up a secret of its own.
    secret = _override(environ, "TELEGRAM_WEBHOOK_SECRET", section.get("webhook_secret", str, None))
    return TelegramSettings(
        token=_override(environ, "TELEGRAM_BOT_TOKEN", section.get("token", str, None)) or None,
        api_base_url=_override(environ, "TELEGRAM_API_BASE_URL", section.get("api_base_url", str, None)),
        mode=section.get("mode", str, d.mode),
        webhook_listen=section.get("webhook_listen", str, d.webhook_listen),
        webhook_port=section.get("webhook_port", int, d.webhook_port),
        webhook_url=section.get("webhook_url", str, None),
        webhook_secret=secret or None,
        questions_per_minute=section.get("questions_per_minute", int, d.questions_per_minute),
        allowed_ids=tuple(allowed),
        refuse_silently=section.get("refuse_silently", bool, d.refuse_silently),
        admin_ids=tuple(admins),
    )


def _ids(section: _Reader, key: str, what: str) -> list[int]:
    ids = section.get(key, list, [])
    if not all(isinstance(item, int) and not isinstance(item, bool) for item in ids):
        raise ConfigError(f"telegram.{key} must be a list of numeric {what}, e.g. [12345678]")
    return list(ids)


def validate(config: Config) -> None:
    """One sentence naming the key and the fix for the first value that cannot work."""
    if config.max_article_mb <= 0:
        raise ConfigError(f"max_article_mb is {config.max_article_mb}: use a size in megabytes above 0")
    telegram = config.telegram
    if telegram.mode not in ("polling", "webhook"):
        raise ConfigError(f"telegram.mode is {telegram.mode!r}: use 'polling' or 'webhook'")
    if telegram.mode == "webhook" and not telegram.webhook_url:
        raise ConfigError("telegram.webhook_url is needed in webhook mode: set the public HTTPS address")
    if telegram.webhook_secret is not None and not WEBHOOK_SECRET.fullmatch(telegram.webhook_secret):
        raise ConfigError(
            "telegram.webhook_secret may hold only letters, digits, _ and - (1 to 256 of them), "
            "as Telegram requires; or leave it out and a random one is used"
        )
    if not 1 <= telegram.webhook_port <= 65535:
        raise ConfigError(f"telegram.webhook_port is {telegram.webhook_port}: use a port from 1 to 65535")
    if telegram.questions_per_minute < 1:
        raise ConfigError("telegram.questions_per_minute must be at least 1")
    for feed in config.feeds:
        if not re.match(r"https?://[^\s/]+", feed):
            raise ConfigError(f"feeds: {feed!r} is not an http(s) URL")


def _override(environ: dict[str, str], name: str, value: Any) -> Any:
    """The environment wins over the file; the file's value is still read, so it is checked."""
    return environ.get(name) or value


def _resolve(path: str, base: Path) -> Path:
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else base / expanded


class _Reader:
    """Typed access to one TOML table that remembers which keys were read."""

    def __init__(self, table: dict[str, Any], prefix: str = "") -> None:
        self.table = table
        self.prefix = prefix
        self.seen: set[str] = set()

    def get(self, key: str, kind: type, default: Any) -> Any:
        self.seen.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"{self.prefix}{key} must be {_kind_name(kind)}, not {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            # TOML has nan and inf; no setting means either, and both slip past range checks.
            raise ConfigError(f"{self.prefix}{key} must be a finite number, not {value!r}")
        return value

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            raise ConfigError(
                f"unknown config key {self.prefix}{unknown[0]}: "
                "check its spelling against config.example.toml"
            )


def _kind_name(kind: type) -> str:
    return {
        int: "a whole number",
        float: "a number",
        str: "a string",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }[kind]
