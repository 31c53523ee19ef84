"""The `articlebot` command as a user runs it: real processes, real model, real files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from hostile_input import LONG_QUESTIONS

from bot.cli import main
from bot.config import BUNDLED_ARTICLES, Config
from bot.engine import AnswerEngine
from bot.reader import ABSTAIN_THRESHOLD
from index.articles import parse_article

pytestmark = pytest.mark.slow

ARTICLEBOT = Path(sys.executable).parent / "articlebot"
BUNDLED = BUNDLED_ARTICLES / "armenia-2021-03-01.txt"


def run(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ARTICLEBOT), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def index_args(engine: AnswerEngine, bundled_config: Config) -> list[str]:
    """Options pointing at the session's index of the bundled article, already built."""
    return ["--index-dir", str(bundled_config.index_dir)]


def test_ask_prints_the_answer_highlighted_in_its_passage(index_args: list[str]) -> None:
    result = run("ask", "who was fired?", *index_args)
    assert result.returncode == 0, result.stderr
    first_block = " ".join(result.stdout.split("\n\n")[0].split())
    # The short answer inside the answer sentence is marked ** where there is no colour.
    assert "immediately fired **Onik Gasparian**, the chief" in first_block
    assert "»Pashinian said the move amounted to" in result.stdout
    flat = " ".join(result.stdout.split())
    assert "2021-03-01 · paragraph 7 of 13" in flat
    assert result.stderr == ""


def test_ask_says_plainly_when_the_article_does_not_answer(index_args: list[str]) -> None:
    result = run(*index_args, "ask", "How do I bake sourdough bread?")
    assert result.returncode == 0
    assert result.stdout.startswith("The article does not seem to answer that.")
    assert "Closest match (not an answer):" in result.stdout
    assert "»" not in result.stdout


def test_ask_json_is_exactly_one_object_of_the_documented_shape(index_args: list[str]) -> None:
    result = run("ask", "--json", "who was fired?", *index_args)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == {
        "question",
        "read_as",
        "kind",
        "focus",
        "answered",
        "confidence",
        "answer",
        "passages",
        "timings_ms",
    }
    assert payload["question"] == "who was fired?"
    # Asked alone: read as asked, an answer (not the gist), sought in every article.
    assert (payload["read_as"], payload["kind"], payload["focus"]) == (None, "answer", None)
    assert payload["answered"] is True
    assert ABSTAIN_THRESHOLD <= payload["confidence"] <= 1.0
    answer = payload["answer"]
    assert set(answer) == {"sentence", "short", "article", "title", "date", "paragraph"}
    assert "Onik Gasparian" in answer["sentence"]
    # The short answer's offsets index the article body, like a passage's start and end.
    short = answer["short"]
    assert short["text"] == "Onik Gasparian"
    body = parse_article(BUNDLED.read_text(encoding="utf-8"), path="", article_id="").text
    assert body[short["start"] : short["end"]] == short["text"]
    assert short["text"] in answer["sentence"]
    assert (answer["article"], answer["date"], answer["paragraph"]) == ("armenia-2021-03-01", "2021-03-01", 7)
    assert payload["passages"]
    for passage in payload["passages"]:
        assert set(passage) == {"text", "score", "article", "title", "date", "paragraph", "start", "end"}
        assert isinstance(passage["score"], float) and isinstance(passage["start"], int)
    assert answer["sentence"] in payload["passages"][0]["text"]
    # The first passage holds the answer; the further ones follow best first.
    further = [p["score"] for p in payload["passages"][1:]]
    assert further == sorted(further, reverse=True)
    assert all(isinstance(v, float) for v in payload["timings_ms"].values())


def test_ask_json_reads_one_question_per_line_from_stdin(index_args: list[str]) -> None:
    questions = "who was fired?\nWhat is the capital of France?\nwho refused to sign the order?\n"
    result = run("ask", "--json", "-", *index_args, stdin=questions)
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["question"] for o in objects] == [
        "who was fired?",
        "What is the capital of France?",
        "who refused to sign the order?",
    ]
    assert [o["answered"] for o in objects] == [True, False, True]
    assert objects[1]["answer"] is None and objects[1]["passages"]
    # `answered` is decided on `confidence`: anyone can score abstention from the output alone.
    assert [o["confidence"] >= ABSTAIN_THRESHOLD for o in objects] == [True, False, True]
    assert 0.0 <= objects[1]["confidence"] < ABSTAIN_THRESHOLD


@pytest.mark.parametrize("locale", ["C.UTF-8", "C", "POSIX"])
def test_a_batch_answers_every_line_in_order_whatever_the_locale(index_args: list[str], locale: str) -> None:
    """Blank, undecodable and over-long lines each get an error object in their place; the batch
    goes on, and non-ASCII questions come back intact."""
    lines = [
        b"who was fired?",
        b"",
        b"who was \xff\xfe fired?",
        ("why " * 300).encode(),
        "кто был уволен — who was fired?".encode(),
    ]
    result = subprocess.run(
        [str(ARTICLEBOT), "ask", "--json", "-", *index_args],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        timeout=300,
        env={**os.environ, "LC_ALL": locale, "LANG": locale, "PYTHONIOENCODING": ""},
    )
    assert result.returncode == 1, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    objects = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]
    assert len(objects) == len(lines)
    assert [("error" in o) for o in objects] == [False, True, True, True, False]
    assert objects[0]["answered"] and objects[4]["question"] == "кто был уволен — who was fired?"
    assert "ask a question" in objects[1]["error"]
    assert objects[2]["error"] == "the line is not valid UTF-8"
    assert objects[2]["question"].startswith("who was ")
    assert "at most 1,000" in objects[3]["error"]


def test_long_questions_in_any_script_are_answered_not_crashed(index_args: list[str]) -> None:
    """Questions under the length limit but of hundreds of wordpieces each get an answer object."""
    result = run("ask", "--json", "-", *index_args, stdin="\n".join(LONG_QUESTIONS) + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["question"] for o in objects] == [q.strip() for q in LONG_QUESTIONS]
    assert all("error" not in o and o["passages"] for o in objects)


def test_json_mode_keeps_status_off_stdout_when_it_builds_the_index(tmp_path: Path) -> None:
    result = run("ask", "--json", "who was fired?", "--index-dir", str(tmp_path / "new-index"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["answered"] is True
    assert "building the index" in result.stderr


def test_index_command_summarises_and_updates(tmp_path: Path) -> None:
    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "a.txt").write_text("Title: Storm\n\nA storm hit the coast. Power failed.", encoding="utf-8")
    result = run("index", str(folder), "--index-dir", str(tmp_path / "index"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("indexed 1 article, ")
    (folder / "b.md").write_text("# Vote\n\nThe budget passed.", encoding="utf-8")
    result = run("index", str(folder), "--index-dir", str(tmp_path / "index"))
    assert "indexed 2 articles" in result.stdout and "(1 embedded, 0 removed)" in result.stdout
    asked = run(
        "ask", "--json", "what passed?", "--articles", str(folder), "--index-dir", str(tmp_path / "index")
    )
    assert json.loads(asked.stdout)["answer"]["title"] == "Vote"


LOG_LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} |^(DEBUG|INFO|WARNING|ERROR)\b", re.MULTILINE
)


def test_index_and_ask_print_no_log_lines_and_a_skipped_file_only_when_indexing(tmp_path: Path) -> None:
    """Without --debug: status lines and one summary, no log lines (a sentence of made-up words,
    over the model's 250 wordpieces, used to log its split at INFO); "skipped" when indexing, not
    before every answer."""
    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "armenia.txt").write_bytes(BUNDLED.read_bytes())
    made_up = " ".join(f"zyqv{n}xqk" for n in range(100))
    (folder / "codes.txt").write_text(f"Title: Codes\n\nThe codes were {made_up}.", encoding="utf-8")
    (folder / "bad.txt").write_text("A story in UTF-16.", encoding="utf-16")
    where = ["--articles", str(folder), "--index-dir", str(tmp_path / "index")]
    indexed = run("index", *where)
    assert indexed.returncode == 0, indexed.stderr
    assert not LOG_LINE.search(indexed.stderr), indexed.stderr
    assert all(line.startswith("articlebot: ") for line in indexed.stderr.splitlines())
    assert indexed.stderr.count(f"articlebot: skipped {folder / 'bad.txt'}: it is UTF-16 text") == 1
    assert indexed.stdout.startswith("indexed 2 articles, ") and indexed.stdout.count("\n") == 1
    asked = run("ask", "who was fired?", *where)
    assert asked.returncode == 0 and asked.stderr == ""


def test_a_file_size_limit_is_said_as_such_not_as_a_full_disk(tmp_path: Path) -> None:
    """Under `ulimit -f` numpy's short write carries no errno; it used to read "the disk is full
    (83598 MB free)"."""
    import resource

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    result = subprocess.run(
        [str(ARTICLEBOT), "index", "--index-dir", str(tmp_path / "index")],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit_files,
    )
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("articlebot: error: cannot save the index at ")
    assert "file-size limit of 20 KB" in last and "ulimit -f" in last, result.stderr
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == ["build.lock"]  # nothing half-written


def test_error_exits_non_zero_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    result = run("ask", "who?", "--articles", str(tmp_path / "missing.txt"))
    assert result.returncode == 1
    assert result.stderr == f"articlebot: error: article not found: {tmp_path / 'missing.txt'}\n"
    assert result.stdout == ""


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run("--debug", "ask", "who?", "--articles", str(tmp_path / "missing.txt"))
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ArticleError" in result.stderr


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d: ["ask", "   "], "ask a question about the article"),
        (lambda d: ["ask", "why " * 300], "ask in at most 1,000"),
        (lambda d: ["ask", "q", "--articles", str(_write(d / "e.txt", "\n"))], "has no text to index"),
        (
            lambda d: ["ask", "q", "--config", str(_write(d / "c.toml", "[search]\ntop_k = 0"))],
            "search.top_k is 0",
        ),
        (lambda d: ["ask", "q", "--config", str(d / "none.toml")], "config file not found"),
        (lambda d: ["ask", "q", "--top-k", "0"], "--top-k is 0"),
    ],
    ids=["empty-question", "huge-question", "empty-article", "bad-config", "missing-config", "bad-top-k"],
)
def test_bad_input_gets_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_args, message: str
) -> None:  # type: ignore[no-untyped-def]
    status = main([*make_args(tmp_path), "--index-dir", str(tmp_path / "index")])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.startswith("articlebot: error: ") and message in captured.err
    assert captured.err.count("\n") == 1
    assert captured.out == ""


def test_corrupt_index_is_reported_with_the_fix(
    tmp_path: Path, engine: AnswerEngine, bundled_config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    (index_dir / "build.lock").write_text("")  # what every build writes first: this folder is an index
    (index_dir / "manifest.json").write_text("{broken")
    assert main(["ask", "who was fired?", "--index-dir", str(index_dir)]) == 1
    err = capsys.readouterr().err
    assert "cannot be read" in err and "articlebot index --rebuild" in err


def test_console_driven_through_a_terminal(index_args: list[str], tmp_path: Path) -> None:
    child = pexpect.spawn(
        str(ARTICLEBOT),
        ["console", "--top-k", "1", *index_args],
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"},
        encoding="utf-8",
        timeout=120,
        dimensions=(40, 120),
    )
    child.expect("question>")
    child.sendline(":help")
    child.expect(":sources")
    child.expect("question>")
    child.sendline("who was fired?")
    child.expect("Gasparian")
    child.expect("question>")
    child.sendline(":more")
    child.expect("│")
    child.expect("question>")
    child.sendline(":sources")
    child.expect("2021-03-01")
    child.expect("question>")
    child.sendline("")  # an empty line is ignored, the session goes on
    child.expect("question>")
    child.sendline(":nonsense")
    child.expect("unknown command")
    child.expect("question>")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (tmp_path / "articlebot" / "history").read_text(encoding="utf-8").count("who was fired?") == 1


def test_console_debug_shows_the_confidence_the_answer_was_decided_on(engine: AnswerEngine) -> None:
    """With --debug, each console answer is followed by the figure `ask --json` gives as "confidence"."""
    from io import StringIO

    from rich.console import Console

    from bot.console import ConsoleSession
    from bot.render import answer_to_json

    for question in ("who was fired?", "How do I bake sourdough bread?"):
        shown = StringIO()  # a session each: the console reads a question in the light of the last
        ConsoleSession(engine, Console(file=shown, width=100, highlight=False), debug=True).ask(question)
        confidence = answer_to_json(engine.ask(question))["confidence"]
        line = f"confidence {confidence:.3f} (answers at {ABSTAIN_THRESHOLD:.3f} or above)"
        assert line in shown.getvalue()
    quiet = StringIO()
    ConsoleSession(engine, Console(file=quiet, width=100, highlight=False)).ask("who was fired?")
    assert "confidence" not in quiet.getvalue()


def test_console_leaves_cleanly_on_ctrl_c(index_args: list[str], tmp_path: Path) -> None:
    child = pexpect.spawn(
        str(ARTICLEBOT),
        ["console", *index_args],
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"},
        encoding="utf-8",
        timeout=120,
    )
    child.expect("question>")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in (child.before or "")


def test_output_cut_short_by_its_reader_ends_quietly(index_args: list[str]) -> None:
    """`articlebot ask … | head -1` used to end with 'articlebot: error: BrokenPipeError'."""
    process = subprocess.Popen(
        [str(ARTICLEBOT), "ask", "--json", "-", *index_args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ},
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    process.stdin.write(b"who was fired?\n")
    process.stdin.flush()
    assert json.loads(process.stdout.readline())["answered"]
    process.stdout.close()  # the reader goes away, as `head -1` does
    process.stdin.write(b"who refused to sign the order?\n")
    process.stdin.close()
    assert process.wait(timeout=300) == 1
    assert process.stderr.read() == b""
