"""The newcomer's first command: `innoverheid demo` end to end, through the installed console command.

It starts local stand-ins of Bluesky, Mastodon (two instances) and X, harvests them with the
real collectors, classifies with the starter model and writes the digest and an export. The
screenshot in the README is of this digest (refreshed with INNOVERHEID_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from report.i18n import THEME_NAMES

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "innoverheid" / "sandbox" / "demo_sample.jsonl"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo-output"
    cwd = tmp_path_factory.mktemp("cwd")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INNOVERHEID_")}
    exe = shutil.which("innoverheid") or f"{sys.executable} -m innoverheid.cli"
    proc = subprocess.run([*exe.split(), "demo", "--out", str(out)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)
    return proc, out, cwd


def test_demo_succeeds_and_says_what_to_open(demo):
    proc, out, cwd = demo
    assert proc.returncode == 0, proc.stderr
    assert str(out / "digest.html") in proc.stdout
    assert "posts harvested, classified and reported" in proc.stdout
    for source in ("bluesky: ok", "mastodon: ok", "x: ok"):
        assert source in proc.stderr
    assert not (cwd / "innoverheid.db").exists()  # the user's own database is not touched


def test_demo_harvests_every_sample_post_once(demo):
    _, out, _ = demo
    sample = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    with (out / "posts.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(sample)
    by_source = {s: sum(r["source"] == s for r in rows) for s in ("bluesky", "mastodon", "x")}
    assert by_source == {p: sum(s["platform"] == p for s in sample) for p in ("bluesky", "mastodon", "x")}
    assert all(r["themes"] for r in rows), "every post is classified"
    assert sum(r["is_repost"] == "True" for r in rows) == sum(bool(s.get("repost_of")) for s in sample)


def test_demo_digest_shows_every_theme_and_grouping(demo):
    _, out, _ = demo
    html = (out / "digest.html").read_text(encoding="utf-8")
    for label, name in THEME_NAMES["nl"].items():
        if label in ("overig", "geen_idee"):
            continue
        assert f'<h2 id="thema-{label}">{name}</h2>' in html, label
    assert "vergelijkbare berichten van" in html  # reposts and cross-posts were grouped into ideas
    md = (out / "digest.md").read_text(encoding="utf-8")
    assert "Open cultuur" in md and "Slimmer organiseren" in md


@pytest.mark.browser
def test_demo_digest_renders_in_chromium(demo, tmp_path):
    from test_digest_browser import FLAGS, chromium

    _, out, _ = demo
    shot = tmp_path / "digest.png"
    subprocess.run([chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1000,1400", (out / "digest.html").as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("INNOVERHEID_UPDATE_SCREENSHOTS"):
        shutil.copyfile(shot, REPO / "docs" / "digest.png")
