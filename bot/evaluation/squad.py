"""Reading SQuAD-format JSON (v1.1 and v2.0) into articles, paragraphs and questions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.errors import ArticlebotError


class SquadFormatError(ArticlebotError):
    """The file is not SQuAD-format JSON."""


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    text: str
    answers: tuple[str, ...]  # empty for an unanswerable (v2.0) question
    paragraph: int  # index into the article's paragraphs

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True)
class SquadArticle:
    title: str
    paragraphs: tuple[str, ...]
    questions: tuple[SquadQuestion, ...]


def load_squad(path: Path) -> list[SquadArticle]:
    """The articles of a SQuAD file, or SquadFormatError saying what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SquadFormatError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SquadFormatError(f"{path} is not readable JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise SquadFormatError(f"{path} is not SQuAD-format JSON: expected an object with a 'data' list")
    try:
        return [_article(entry) for entry in data["data"]]
    except (KeyError, TypeError, AttributeError) as error:
        raise SquadFormatError(f"{path} is not SQuAD-format JSON: missing or malformed {error}") from None


def _article(entry: dict[str, Any]) -> SquadArticle:
    paragraphs: list[str] = []
    questions: list[SquadQuestion] = []
    for number, paragraph in enumerate(entry["paragraphs"]):
        paragraphs.append(" ".join(str(paragraph["context"]).split()))
        for qa in paragraph["qas"]:
            answers = () if qa.get("is_impossible") else tuple(str(a["text"]) for a in qa.get("answers", []))
            questions.append(SquadQuestion(str(qa["id"]), str(qa["question"]), answers, number))
    return SquadArticle(str(entry.get("title", "untitled")), tuple(paragraphs), tuple(questions))
