"""train, evaluate, predict, classify and review as a user runs them."""

import csv
import json

import pytest
from sqlalchemy import select

from storage.models import Label, ModelRecord

POSTS = [
    {"id": "p1", "text": "Laat teamleiders de eerste maand vooral luisteren op de werkvloer #innoverheid"},
    {"id": "p2", "text": "Webinar donderdag 14:00 over het charter, aanmelden via example.org/x #innoverheid"},
    {"id": "p3", "text": "Eén vaste kantoordag per team, de rest thuiswerken #innoverheid"},
    {"id": "p4", "text": "Zet op elke belastingbrief bovenaan in één zin wat je moet doen #innoverheid"},
    {"id": "p5", "text": "RT @x: Laat teamleiders de eerste maand vooral luisteren op de werkvloer #innoverheid"},
]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def stored(workdir, run_cli):
    """The five posts imported into the test database and classified."""
    res = run_cli("import", str(_write_jsonl(workdir / "posts.jsonl", POSTS)))
    assert res.exit_code == 0, res.output
    res = run_cli("classify")
    assert res.exit_code == 0, res.output
    return workdir


def test_predict_writes_one_answer_per_line_in_input_order(workdir, run_cli):
    rows = [{"id": 7, "text": POSTS[0]["text"]}, {"text": "zonder id"}] + POSTS[1:]
    res = run_cli("predict", str(_write_jsonl(workdir / "in.jsonl", rows)))
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert [o["id"] for o in out] == [7, 2, "p2", "p3", "p4", "p5"]
    for o in out:
        assert set(o) == {"id", "labels", "scores", "needs_review"}
        assert len(o["scores"]) == 9 and isinstance(o["needs_review"], bool)
    assert out[0]["labels"][0] == "leiderschap"
    assert out[2]["labels"] == ["geen_idee"]


def test_predict_handles_batch_edges_and_empty_input(workdir, run_cli):
    (workdir / "config.yaml").write_text("classifier:\n  batch_size: 2\n")
    res = run_cli("predict", str(_write_jsonl(workdir / "in.jsonl", POSTS[:4])))
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["id"] for line in res.stdout.splitlines()] == ["p1", "p2", "p3", "p4"]
    (workdir / "empty.jsonl").write_text("")
    res = run_cli("predict", str(workdir / "empty.jsonl"))
    assert res.exit_code == 0 and res.stdout == ""


def test_predict_reads_stdin(workdir, run_cli):
    res = run_cli("predict", "-", input=json.dumps(POSTS[2]) + "\n")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["labels"][0] == "flexibilisering"


def test_predict_reports_bad_lines_with_their_number_and_goes_on(workdir, run_cli):
    path = workdir / "in.jsonl"
    path.write_text(json.dumps(POSTS[0]) + "\n{broken\n" + json.dumps({"id": "x"}) + "\n" + json.dumps(POSTS[1]) + "\n")
    res = run_cli("predict", str(path))
    assert res.exit_code == 1
    assert [json.loads(line)["id"] for line in res.stdout.splitlines()] == ["p1", "p2"]
    assert "line 2:" in res.stderr and "line 3:" in res.stderr and "text" in res.stderr


def test_predict_of_a_missing_file_is_exit_2_with_a_message(workdir, run_cli):
    res = run_cli("predict", "nope.jsonl")
    assert res.exit_code == 2 and "nope.jsonl" in res.stderr and "Traceback" not in res.output


def test_needs_review_follows_min_confidence(workdir, run_cli):
    (workdir / "config.yaml").write_text("classifier:\n  min_confidence: 1.0\n")
    res = run_cli("predict", str(_write_jsonl(workdir / "in.jsonl", POSTS)))
    assert all(json.loads(line)["needs_review"] for line in res.stdout.splitlines())


def test_evaluate_prints_the_full_table_and_exit_codes(workdir, run_cli):
    good = [{"id": "1", "text": POSTS[0]["text"], "labels": ["leiderschap"]},
            {"id": "2", "text": POSTS[1]["text"], "labels": ["geen_idee"]}]
    res = run_cli("evaluate", "--data", str(_write_jsonl(workdir / "ok.jsonl", good)))
    assert res.exit_code == 0, res.output
    for name in ("netwerken", "overig", "theme macro-F1", "theme micro-F1", "idea-gate F1", "geen_idee F1",
                 "primary-theme accuracy"):
        assert name in res.stdout
    bad = good + [{"id": "3", "text": "x", "labels": ["overig", "leiderschap"]}]
    res = run_cli("evaluate", "--data", str(_write_jsonl(workdir / "bad.jsonl", bad)))
    assert res.exit_code == 1 and "line 3:" in res.stderr and "overig" in res.stderr
    res = run_cli("evaluate", "--data", str(workdir / "missing.jsonl"))
    assert res.exit_code == 2 and "missing.jsonl" in res.stderr


def test_classify_stores_version_and_confidence_and_skips_done_posts(stored, run_cli, db):
    with db.read() as conn:
        rows = conn.execute(select(Label.__table__).where(Label.__table__.c.origin == "model")).all()
        models = conn.execute(select(ModelRecord.__table__)).all()
    assert {r.post_id for r in rows} == {1, 2, 3, 4, 5}
    assert all(r.model_version and r.model_version.startswith("charter-") and 0 <= r.confidence <= 1 for r in rows)
    assert [m.version for m in models] == [rows[0].model_version] and models[0].corpus_hash
    res = run_cli("classify")
    assert "classified 0 posts" in res.stdout
    res = run_cli("classify", "--all")
    assert "classified 5 posts" in res.stdout


def test_review_csv_round_trip_and_a_persons_label_wins_in_export(stored, run_cli, db, monkeypatch):
    monkeypatch.setenv("USER", "anne")
    res = run_cli("review", "--export", "review.csv", "--limit", "10")
    assert res.exit_code == 0, res.output
    with open(stored / "review.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 and rows[0]["labels"] == ""
    by_id = {int(r["post_id"]): r for r in rows}
    by_id[4]["labels"] = "netwerken;leiderschap"
    by_id[2]["labels"] = "geen_idee;overig"  # breaks the codebook: rejected with its line number
    with open(stored / "filled.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    res = run_cli("review", "--import", "filled.csv")
    assert res.exit_code == 1
    assert "stored labels for 1 posts" in res.stdout and "line " in res.stderr and "stand alone" in res.stderr
    with db.read() as conn:
        person = conn.execute(select(Label.__table__).where(Label.__table__.c.origin == "person")
                              .order_by(Label.__table__.c.rank)).all()
    assert [(p.post_id, p.label, p.created_by) for p in person] == [(4, "netwerken", "anne"),
                                                                     (4, "leiderschap", "anne")]
    assert person[0].created_at is not None
    assert run_cli("export", "--out", "out.jsonl").exit_code == 0
    lines = (stored / "out.jsonl").read_text(encoding="utf-8").splitlines()
    exported = {json.loads(line)["post_id"]: json.loads(line) for line in lines}
    assert exported[4]["themes"] == "netwerken;leiderschap" and exported[4]["label_origin"] == "person"
    assert exported[1]["label_origin"] == "model"
    assert run_cli("review", "--export", "again.csv").exit_code == 0
    with open(stored / "again.csv", newline="", encoding="utf-8") as fh:
        assert 4 not in {int(r["post_id"]) for r in csv.DictReader(fh)}


def test_review_shows_one_post_per_near_duplicate_group(stored, run_cli, db):
    from sqlalchemy import update

    from storage.models import Post

    with db.write() as conn:
        conn.execute(update(Post.__table__).where(Post.__table__.c.id.in_([1, 5])).values(group_id=1))
    assert run_cli("review", "--export", "r.csv").exit_code == 0
    with open(stored / "r.csv", newline="", encoding="utf-8") as fh:
        ids = {int(r["post_id"]) for r in csv.DictReader(fh)}
    assert len(ids & {1, 5}) == 1 and {2, 3, 4} <= ids


def test_review_in_the_terminal_stores_who_and_labels_the_group(stored, run_cli, db):
    from sqlalchemy import update

    from storage.models import Post

    with db.write() as conn:
        conn.execute(update(Post.__table__).where(Post.__table__.c.id.in_([1, 5])).values(group_id=1))
    res = run_cli("review", "--who", "bert", "--limit", "2", input="9\nnonsense\n2 1\n")
    assert res.exit_code == 0, res.output
    assert "not a label" in res.output and "stored labels for 2 posts as bert" in res.output
    with db.read() as conn:
        person = conn.execute(select(Label.__table__.c.post_id, Label.__table__.c.created_by)
                              .where(Label.__table__.c.origin == "person")).all()
    assert {p.created_by for p in person} == {"bert"}
    assert len({p.post_id for p in person}) >= 2


@pytest.mark.slow
def test_train_uses_a_persons_labels_prints_figures_and_writes_a_model(stored, run_cli, db, monkeypatch):
    import classify.data
    from classify import store
    from classify.train import merge

    small = classify.data.load_seed()[::6]
    monkeypatch.setattr(classify.data, "load_seed", lambda: small)
    n_seed = len(merge(small))  # short posts like '👀' recur across writers: one text counts once
    run_cli("review", "--export", "r.csv")
    with open(stored / "r.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows[0]["labels"] = "overig"
    with open(stored / "r.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert run_cli("review", "--import", "r.csv").exit_code == 0
    res = run_cli("train", "--folds", "2", "--jobs", "2", "--out", "m")
    assert res.exit_code == 0, res.output
    assert f"training on {n_seed + 1} posts" in res.stdout and "1 labelled by people" in res.stdout
    assert "theme macro-F1" in res.stdout and "primary-theme accuracy" in res.stdout
    meta = store.read_meta(stored / "m")
    assert meta["n_examples"] == n_seed + 1
    (stored / "config.yaml").write_text("classifier:\n  model: m\n")
    res = run_cli("predict", str(_write_jsonl(stored / "in.jsonl", POSTS[:1])))
    assert res.exit_code == 0 and json.loads(res.stdout)["labels"]
