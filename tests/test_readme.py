"""The README's promises: the quick start has exactly two sh commands, and CI runs the second."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def quick_start_blocks() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_quick_start_has_exactly_two_commands():
    blocks = quick_start_blocks()
    assert len(blocks) == 2
    assert "innoverheid demo" in blocks[0] and blocks[0].startswith("pip install")
    assert "pytest" in blocks[1] and "[test]" in blocks[1]


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "## Quick start" in ci and "TEST_CMD" in ci
