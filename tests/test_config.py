"""Configuration: TOML, environment overrides, and one-line errors naming the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from bot.config import BUNDLED_ARTICLES, Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "articlebot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_serve_the_bundled_article(tmp_path: Path) -> None:
    config = load_config(None, environ={"XDG_CACHE_HOME": str(tmp_path)})
    assert config.articles == (BUNDLED_ARTICLES,)
    assert config.index_dir == tmp_path / "articlebot" / "index"
    assert config.search.mode == "hybrid"


def test_example_config_is_valid_and_matches_the_defaults(tmp_path: Path) -> None:
    example = load_config(ROOT / "config.example.toml", environ={"XDG_CACHE_HOME": str(tmp_path)})
    defaults = load_config(None, environ={"XDG_CACHE_HOME": str(tmp_path)})
    assert example == defaults


def test_example_config_documents_every_key() -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    settings = re.compile(r"^#?\s*(\[\w+\]|\w+ = .*)$")
    uncommented = "\n".join(m.group(1) for line in text.splitlines() if (m := settings.match(line)))
    documented = tomllib.loads(uncommented)
    config = Config()
    assert {"articles", "index_dir", "max_article_mb", "feeds"} <= set(documented)
    for section, fields in {
        "search": ["top_k", "mode", "dense_weight", "lexical_weight", "ann_threshold"],
        "answer": ["abstain_threshold", "reader"],
        "passages": ["max_sentences", "max_words", "stride", "cross_paragraphs"],
        "model": ["device", "query_encoder"],
        "ingest": list(config.ingest.__dataclass_fields__),
        "index": list(config.index.__dataclass_fields__),
    }.items():
        assert set(fields) <= set(documented[section]), section
    telegram_fields = set(config.telegram.__dataclass_fields__)
    assert telegram_fields <= set(documented["telegram"]), telegram_fields - set(documented["telegram"])


def test_the_reader_runtime_is_chosen_in_the_config(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, ""), environ={}).answer.reader == "onnx-int8"
    config = load_config(_write(tmp_path, '[answer]\nreader = "onnx"\n'), environ={})
    assert config.answer.reader == "onnx"


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = _write(tmp_path, 'articles = ["news/", "/abs/a.txt"]\nindex_dir = "idx"\n[search]\ntop_k = 5\n')
    config = load_config(path, environ={})
    assert config.articles == (tmp_path / "news", Path("/abs/a.txt"))
    assert config.index_dir == tmp_path / "idx"
    assert config.search.top_k == 5


def test_environment_overrides_paths_and_secrets(tmp_path: Path) -> None:
    path = _write(tmp_path, '[telegram]\ntoken = "from-file"\n')
    config = load_config(
        path,
        environ={
            "ARTICLEBOT_INDEX_DIR": str(tmp_path / "env-index"),
            "ARTICLEBOT_ARTICLES": f"{tmp_path / 'a.txt'}:{tmp_path / 'b'}",
            "TELEGRAM_BOT_TOKEN": "from-env",
            "ARTICLEBOT_DEVICE": "auto",
        },
    )
    assert config.index_dir == tmp_path / "env-index"
    assert config.articles == (tmp_path / "a.txt", tmp_path / "b")
    assert config.telegram.token == "from-env"
    assert config.model.device == "auto"
    assert "from-env" not in repr(config)


def test_the_webhook_listens_on_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    """Behind a TLS proxy on the same machine: nothing else needs to reach the bot's own port."""
    assert load_config(None, environ={}).telegram.webhook_listen == "127.0.0.1"
    path = _write(tmp_path, '[telegram]\nwebhook_listen = "0.0.0.0"\n')
    assert load_config(path, environ={}).telegram.webhook_listen == "0.0.0.0"


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, "[search]\ntop_k = 7\n")
    assert load_config(None, environ={"ARTICLEBOT_CONFIG": str(path)}).search.top_k == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[search]\ntop_k = 0\n", "search.top_k is 0: use a number from 1 to 50"),
        ("[search]\ntop_k = 'three'\n", "search.top_k must be a whole number"),
        ("[search]\nmode = 'fuzzy'\n", "search.mode is 'fuzzy'"),
        ("[search]\ndense_weight = 0\nlexical_weight = 0\n", "not both 0"),
        ("[answer]\nabstain_threshold = 2\n", "answer.abstain_threshold is 2.0"),
        ("[answer]\nreader = 'int8'\n", "answer.reader is 'int8': use 'onnx' or 'onnx-int8'"),
        ("[model]\ndevice = 'tpu'\n", "model.device is 'tpu'"),
        ("[passages]\nstride = 9\n", "passages.stride must be between 1 and max_sentences"),
        ("[passages]\nvectors = 'late'\n", "passages.vectors is 'late': use one of encoded, pooled"),
        ("[serch]\ntop_k = 3\n", "unknown config key serch"),
        ("[search]\ntopk = 3\n", "unknown config key search.topk"),
        ("articles = 'news/'\n", "articles must be a list"),
        ("[telegram]\nmode = 'webhook'\n", "telegram.webhook_url is needed"),
        ("[telegram]\nallowed_ids = ['me']\n", "telegram.allowed_ids must be a list of numeric"),
        ("[telegram]\nwebhook_secret = 'a secret!'\n", "telegram.webhook_secret may hold only letters"),
        ("top_k = = 3\n", "is not valid TOML"),
        # Hardening: TOML's nan and inf slip past every range check, and an empty list is a mistake.
        ("[search]\ndense_weight = nan\n", "search.dense_weight must be a finite number, not nan"),
        ("[search]\nlexical_weight = inf\n", "search.lexical_weight must be a finite number, not inf"),
        ("[answer]\nabstain_threshold = -inf\n", "answer.abstain_threshold must be a finite number"),
        ("articles = []\n", "articles names no article file or folder"),
        ("max_article_mb = 0\n", "max_article_mb is 0.0: use a size in megabytes above 0"),
    ],
)
def test_bad_config_names_the_key_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")) as caught:
        load_config(_write(tmp_path, text), environ={})
    assert "\n" not in str(caught.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize("value", [":", "", "::"])
def test_an_articles_variable_naming_no_path_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="ARTICLEBOT_ARTICLES names no article file or folder"):
        load_config(None, environ={"ARTICLEBOT_ARTICLES": value})
