"""Labelled and unlabelled JSONL files: reading them line by line, checking every line.

A bad line never aborts the file: it is reported with its line number and skipped, so the
caller can say "line 17: ..." and go on with the rest. Only a file that cannot be read at all
raises `DataFileError`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from classify.model import GEEN_IDEE, LABELS, MAX_THEMES, OVERIG, THEMES

DATA_DIR = Path(__file__).resolve().parent / "data"
SEED_DIR = DATA_DIR / "seed"
EVAL_FILE = DATA_DIR / "eval.jsonl"


class DataFileError(ValueError):
    """The file as a whole cannot be read."""


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    labels: tuple[str, ...]  # primary first


@dataclass
class LineProblems:
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong)

    def add(self, line: int, message: str) -> None:
        self.problems.append((line, message))


def check_labels(labels: object) -> tuple[str, ...]:
    """The codebook's rules for a label list; raises ValueError saying what is wrong."""
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ValueError("'labels' must be a non-empty list of label names")
    labels = [x.strip() for x in labels]
    unknown = [x for x in labels if x not in LABELS]
    if unknown:
        raise ValueError(f"unknown label {unknown[0]!r}; use {', '.join(LABELS)}")
    if len(set(labels)) != len(labels):
        raise ValueError("a label is repeated")
    if (OVERIG in labels or GEEN_IDEE in labels) and len(labels) > 1:
        raise ValueError("overig and geen_idee stand alone, never beside another label")
    if sum(x in THEMES for x in labels) > MAX_THEMES:
        raise ValueError(f"at most {MAX_THEMES} themes per post")
    return tuple(labels)


def _open_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    if str(path) == "-":
        for n, line in enumerate(sys.stdin, 1):
            yield n, line
        return
    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"{p}: no such file")
    try:
        fh = p.open("r", encoding="utf-8-sig")
    except OSError as exc:
        raise DataFileError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    with fh:
        try:
            for n, line in enumerate(fh, 1):
                yield n, line
        except UnicodeDecodeError:
            raise DataFileError(f"{p}: is not UTF-8 text; save it as UTF-8 JSONL (one JSON object per line)") from None


def _record(line: str) -> dict:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(rec, dict):
        raise ValueError("must be a JSON object such as {\"id\": \"1\", \"text\": \"...\"}")
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("'text' is missing or empty")
    return rec


def read_texts(path: str | Path, problems: LineProblems) -> Iterator[tuple[int, object, str]]:
    """(line number, id, text) for each good line of a JSONL file of {"id","text"}; bad lines go to problems.

    The id is passed on as given (string or number); a line without one gets its line number."""
    for n, line in _open_lines(path):
        if not line.strip():
            continue
        try:
            rec = _record(line)
        except ValueError as exc:
            problems.add(n, str(exc))
            continue
        rid = rec.get("id")
        yield n, (rid if rid is not None else n), rec["text"]


def read_labelled(path: str | Path, problems: LineProblems) -> list[Example]:
    """Examples from a JSONL file of {"id","text","labels"}; bad lines go to problems."""
    out = []
    for n, line in _open_lines(path):
        if not line.strip():
            continue
        try:
            rec = _record(line)
            labels = check_labels(rec.get("labels"))
        except ValueError as exc:
            problems.add(n, str(exc))
            continue
        rid = rec.get("id")
        out.append(Example(str(rid) if rid is not None else f"{Path(str(path)).name}:{n}", rec["text"], labels))
    return out


def seed_files() -> list[Path]:
    return sorted(SEED_DIR.glob("*.jsonl"))


def load_seed() -> list[Example]:
    """The bundled seed corpus, in file and line order. A bad line here is a packaging bug: it raises."""
    examples: list[Example] = []
    for path in seed_files():
        problems = LineProblems()
        examples += read_labelled(path, problems)
        if problems.problems:
            line, msg = problems.problems[0]
            raise DataFileError(f"{path}: line {line}: {msg}")
    return examples


def corpus_hash(examples: Iterable[Example]) -> str:
    """SHA-256 over the examples' text and labels in order: the training data's fingerprint."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.text, list(ex.labels)], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()
