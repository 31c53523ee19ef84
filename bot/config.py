"""Configuration: one frozen value from TOML, environment overrides, checked at start-up."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.reader import ABSTAIN_THRESHOLD
from index.errors import ArticlebotError
from index.split import SplitSettings
from index.store import SEARCH_MODES

BUNDLED_ARTICLES = Path(__file__).parent / "articles"
DEVICES = ("cpu", "cuda", "auto")
QUERY_ENCODERS = ("fast", "sentence-transformers")
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


@dataclass(frozen=True)
class Config:
    """Everything the bot is told; defaults serve the bundled article."""

    articles: tuple[Path, ...] = (BUNDLED_ARTICLES,)
    # Larger article files are skipped with a warning.
    max_article_mb: float = 5.0
    index_dir: Path = field(default_factory=lambda: default_index_dir())
    top_k: int = 3
    mode: str = "hybrid"
    dense_weight: float = 0.7
    lexical_weight: float = 0.3
    abstain_threshold: float = ABSTAIN_THRESHOLD
    device: str = "cpu"
    # Questions: the torch-free encoder of the same model, or sentence-transformers itself.
    query_encoder: str = "fast"
    # Above this many passages the dense index is approximate (FAISS IVF-SQ8), below it exact.
    ann_threshold: int = 200_000
    passages: SplitSettings = field(default_factory=SplitSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def default_index_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_CACHE_HOME/articlebot/index, or ~/.cache/articlebot/index."""
    cache = (os.environ if environ is None else environ).get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "articlebot" / "index"


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
    defaults = Config(index_dir=Path("."))
    split_defaults = SplitSettings()

    try:
        split = SplitSettings(
            max_sentences=passages.get("max_sentences", int, split_defaults.max_sentences),
            max_words=passages.get("max_words", int, split_defaults.max_words),
            stride=passages.get("stride", int, split_defaults.stride),
            cross_paragraphs=passages.get("cross_paragraphs", bool, split_defaults.cross_paragraphs),
        )
    except ValueError as error:
        raise ConfigError(f"passages: {error}") from None

    config = Config(
        articles=tuple(_resolve(p, base) for p in articles) if articles else (BUNDLED_ARTICLES,),
        index_dir=_resolve(index_dir, base) if index_dir else default_index_dir(environ),
        max_article_mb=reader.get("max_article_mb", float, defaults.max_article_mb),
        top_k=search.get("top_k", int, defaults.top_k),
        mode=search.get("mode", str, defaults.mode),
        dense_weight=search.get("dense_weight", float, defaults.dense_weight),
        lexical_weight=search.get("lexical_weight", float, defaults.lexical_weight),
        abstain_threshold=answer.get("abstain_threshold", float, defaults.abstain_threshold),
        device=_override(environ, "ARTICLEBOT_DEVICE", model.get("device", str, defaults.device)),
        query_encoder=_override(
            environ, "ARTICLEBOT_QUERY_ENCODER", model.get("query_encoder", str, defaults.query_encoder)
        ),
        ann_threshold=search.get("ann_threshold", int, defaults.ann_threshold),
        passages=split,
        telegram=_telegram(telegram, environ),
    )
    for reader_ in (reader, search, answer, model, passages, telegram):
        reader_.reject_unknown()
    validate(config)
    return config


def _telegram(section: _Reader, environ: dict[str, str]) -> TelegramSettings:
    d = TelegramSettings()
    allowed = section.get("allowed_ids", list, [])
    if not all(isinstance(item, int) and not isinstance(item, bool) for item in allowed):
        raise ConfigError("telegram.allowed_ids must be a list of numeric user or chat ids, e.g. [12345678]")
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
    )


def validate(config: Config) -> None:
    """One sentence naming the key and the fix for the first value that cannot work."""
    if config.max_article_mb <= 0:
        raise ConfigError(f"max_article_mb is {config.max_article_mb}: use a size in megabytes above 0")
    if config.top_k < 1 or config.top_k > 50:
        raise ConfigError(f"search.top_k is {config.top_k}: use a number from 1 to 50")
    if config.mode not in SEARCH_MODES:
        raise ConfigError(f"search.mode is {config.mode!r}: use one of {', '.join(SEARCH_MODES)}")
    if (
        config.dense_weight < 0
        or config.lexical_weight < 0
        or config.dense_weight + config.lexical_weight == 0
    ):
        raise ConfigError("search.dense_weight and search.lexical_weight must be >= 0 and not both 0")
    if not 0.0 <= config.abstain_threshold <= 1.0:
        raise ConfigError(f"answer.abstain_threshold is {config.abstain_threshold}: use a number from 0 to 1")
    if config.device not in DEVICES:
        raise ConfigError(f"model.device is {config.device!r}: use one of {', '.join(DEVICES)}")
    if config.query_encoder not in QUERY_ENCODERS:
        choices = ", ".join(QUERY_ENCODERS)
        raise ConfigError(f"model.query_encoder is {config.query_encoder!r}: use one of {choices}")
    if config.ann_threshold < 1:
        raise ConfigError(f"search.ann_threshold is {config.ann_threshold}: use a passage count >= 1")
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
