"""A clean stop: a real `innoverheid run` process, a real SIGTERM/SIGINT in the middle of a harvest.

The process is this file run as a script (see the bottom): the real command line, with a slow
fake platform standing in for mastodon in harvester.registry.REGISTRY. The fake announces
each page on stdout and holds one page until the test creates a gate file, so the signal
always lands while that page is in progress. test_locks.py uses the same helper.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

REPO = Path(__file__).resolve().parent.parent
HELPER = Path(__file__).resolve()


# ------------------------------------------------------------------ driving the helper process


def write_config(folder: Path, database: str, **schedule) -> Path:
    cfg = folder / "config.yaml"
    lines = [f"database: {database}",
             "sources: {bluesky: {enabled: false}, mastodon: {enabled: true}, x: {enabled: false}}",
             "harvest: {state_dir: state}"]
    if schedule:
        lines.append("schedule: {" + ", ".join(f"{k}: {v}" for k, v in schedule.items()) + "}")
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


class Proc:
    """A helper process whose stdout lines can be awaited."""

    def __init__(self, folder: Path, *args: str, pages: int = 5, per_page: int = 3, hold_at: int = -1,
                 gate: Path | None = None, env: dict | None = None):
        environ = {k: v for k, v in os.environ.items() if not k.startswith("INNOVERHEID_")}
        environ.update({"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO), "FAKE_PAGES": str(pages),
                        "FAKE_PER_PAGE": str(per_page), "FAKE_HOLD_AT": str(hold_at),
                        "FAKE_GATE": str(gate or folder / "gate"), **(env or {})})
        self.p = subprocess.Popen([sys.executable, str(HELPER), "--config", str(folder / "config.yaml"), *args],
                                  cwd=folder, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.p.poll() is not None and self.lines.empty():
                    break
                continue
            self.out.append(line)
            if text in line:
                return
        raise AssertionError(f"never saw {text!r}; stdout so far: {self.out}; stderr: "
                             f"{self.p.stderr.read() if self.p.poll() is not None else '(running)'}")

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        code = self.p.wait(timeout=timeout)
        time.sleep(0.05)
        while not self.lines.empty():
            self.out.append(self.lines.get())
        return code, "\n".join(self.out), self.p.stderr.read()


def run_helper(folder: Path, *args: str, **kwargs) -> tuple[int, str, str]:
    return Proc(folder, *args, **kwargs).finish()


def table(url: str, name: str) -> list[dict]:
    from storage.models import Base

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            t = Base.metadata.tables[name]
            return [dict(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns)).mappings()]
    finally:
        engine.dispose()


# ------------------------------------------------------------------ the tests


@pytest.fixture
def folder(tmp_path) -> Path:
    write_config(tmp_path, f"sqlite:///{tmp_path / 'ops.db'}")
    return tmp_path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_lets_the_page_in_progress_commit_then_the_rerun_resumes(folder, sig):
    url = f"sqlite:///{folder / 'ops.db'}"
    proc = Proc(folder, "run", "--steps", "harvest", hold_at=2)
    proc.wait_for("fetching page 2")  # pages 0 and 1 are committed; page 2 is in progress
    proc.p.send_signal(sig)
    time.sleep(0.3)  # the signal is handled while page 2 is still being fetched
    (folder / "gate").touch()  # now page 2 arrives
    code, out, err = proc.finish()

    assert code == 128 + sig, err
    assert "stopped by signal; the next run resumes from the bookmarks" in err
    assert "Traceback" not in err
    assert len(table(url, "posts")) == 9  # pages 0, 1 and the page in progress (2): 3 posts each
    assert table(url, "bookmarks")[0]["state"] == {"next": 3}
    assert [r["outcome"] for r in table(url, "harvest_runs")] == ["interrupted"]
    (job,) = table(url, "job_runs")
    assert job["outcome"] == "interrupted" and job["finished_at"] is not None
    assert not table(url, "leases")  # the lock was released on the way out

    code, out, err = run_helper(folder, "run", "--steps", "harvest")
    assert code == 0, err
    assert "resuming from page 3" in out
    posts = table(url, "posts")
    assert len(posts) == 15 and len({p["source_id"] for p in posts}) == 15  # nothing fetched twice
    assert [r["outcome"] for r in table(url, "job_runs")] == ["interrupted", "ok"]


def test_a_second_signal_stops_at_once_and_loses_only_the_unsaved_page(folder):
    url = f"sqlite:///{folder / 'ops.db'}"
    proc = Proc(folder, "run", "--steps", "harvest", hold_at=2)  # the gate never opens
    proc.wait_for("fetching page 2")
    proc.p.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.p.send_signal(signal.SIGTERM)
    code, out, err = proc.finish(timeout=10)

    assert code == 128 + signal.SIGTERM
    assert "again: stopping at once" in err
    assert len(table(url, "posts")) == 6  # pages 0 and 1; page 2 was never stored
    assert table(url, "bookmarks")[0]["state"] == {"next": 2}

    # The lease of the process that exited at once does not block the next run on this machine.
    code, out, err = run_helper(folder, "run", "--steps", "harvest")
    assert code == 0, err
    assert "resuming from page 2" in out and len(table(url, "posts")) == 15
    runs = table(url, "job_runs")
    assert [r["outcome"] for r in runs] == ["interrupted", "ok"]
    assert "ended without finishing" in runs[0]["error"]


# ------------------------------------------------------------------ the helper process itself
# `python tests/test_signals.py [innoverheid options] COMMAND ...` runs the real CLI with this
# module registered as the "mastodon" platform module (test-only: REGISTRY maps a source name
# to the module whose build() makes it). Environment: FAKE_PAGES, FAKE_PER_PAGE, FAKE_HOLD_AT
# (the page that waits for the gate), FAKE_GATE (the gate file).


def _say(text: str) -> None:
    print(text, flush=True)


class SlowSource:
    name = "fake"

    def __init__(self) -> None:
        self.pages_total = int(os.environ.get("FAKE_PAGES", "5"))
        self.per_page = int(os.environ.get("FAKE_PER_PAGE", "3"))
        self.hold_at = int(os.environ.get("FAKE_HOLD_AT", "-1"))
        self.gate = Path(os.environ.get("FAKE_GATE", "gate"))

    def targets(self) -> list[str]:
        return [""]

    def pages(self, hashtag, target, bookmark):
        from harvester.base import Page, Post

        start = (bookmark or {}).get("next", 0)
        _say(f"resuming from page {start}")
        for n in range(start, self.pages_total):
            _say(f"fetching page {n}")
            if n == self.hold_at:
                deadline = time.monotonic() + 60
                while not self.gate.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
            created = datetime(2025, 3, 3, 9, n, tzinfo=timezone.utc)
            posts = [Post("fake", f"p{n}-{i}", f"Idee {n}-{i}: minder vergaderen #{hashtag}", {"n": n, "i": i},
                          author_handle=f"user{i}", created_at=created, hashtags=[hashtag])
                     for i in range(self.per_page)]
            yield Page(posts, bookmark={"next": n + 1})


def build(ctx) -> SlowSource:
    return SlowSource()


if __name__ == "__main__":
    from harvester import registry

    registry.REGISTRY["mastodon"] = "__main__"
    from innoverheid.cli import main

    sys.argv[0] = "innoverheid"
    main()
