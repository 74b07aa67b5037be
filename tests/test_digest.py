"""The digest as drafters see it, from a known database: counts, grouping, ordering, escaping, what is
new since the previous digest, English, pseudonyms and the quality appendix. Runs on SQLite and PostgreSQL.

The database (built by `build`) holds ideas under every theme, a repost, a cross-post, a light
rewording, a quote-post, hostile texts, a person's label, a post awaiting review, harvest runs and
a model with evaluation figures. tests/test_digest_browser.py opens the same digest in Chromium.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from classify.grouping import assign_groups
from harvester.base import Post
from innoverheid.config import LABELS_THEMES, Config
from report.digest import CSP, write_digest
from report.export import pseudonym
from storage.labels import Prediction, effective_labels, replace_model_labels, set_person_labels
from storage.models import DigestRecord, HarvestRun, ModelRecord
from storage.models import Post as PostRow
from storage.posts import insert_posts

pytestmark = pytest.mark.postgres

T0 = datetime(2013, 2, 4, 9, 0, tzinfo=timezone.utc)
SCRIPT = "<script>document.title='pwned'</script>Laat professionals zelf beslissen over maatwerk #innoverheid"
ONERROR = ('<img src="http://127.0.0.1:9/beacon.png" onerror="document.title=\'pwned\'"> Vertrouw het oordeel '
           "van de professional, schrap de checklist #innoverheid")
RTL = "\u202eLaat de professional zelf het gereedschap kiezen\u202c en geef een eigen budget #innoverheid"
LONG = "Minder registratielast voor de professional, meer tijd voor het vak. " * 150 + "EINDE #innoverheid"
MARKDOWN = "![x](http://127.0.0.1:9/track.png) [klik hier](javascript:alert(1)) Schrijf brieven in eenvoudige taal"
STYLE = '<style>body{background:url("http://127.0.0.1:9/css.png")}</style><link rel="stylesheet" href="http://127.0.0.1:9/x.css">'
ORIGINAL = ("Zet de onderzoeksrapporten die we laten maken meteen online, ook als de uitkomst ons niet goed "
            "uitkomt #innoverheid")
REWORDED = ("Zet onderzoeksrapporten die we laten maken gewoon meteen online, ook als de uitkomst ons niet goed "
            "uitkomt! #innoverheid")


def post(source: str, sid: str, text: str, author: str, hours: float, **kw) -> Post:
    url = kw.pop("url", f"https://{source}.example/{author}/{sid}")
    return Post(source=source, source_id=sid, text=text, raw={"id": sid}, url=url, author_handle=author,
                author_name=kw.pop("name", author.title()), created_at=T0 + timedelta(hours=hours),
                hashtags=["innoverheid"], **kw)


# (post, labels, confidence); labels None = unlabelled
POSTS = [
    # open_cultuur: an original, a repost, a light rewording on X, a cross-post on Mastodon -> one idea, 4 people
    (post("bluesky", "b1", ORIGINAL, "anna", 1, like_count=5, repost_count=2), ["open_cultuur"], 0.9),
    (post("bluesky", "b1#repost:bert", ORIGINAL, "bert", 2, is_repost=True, repost_of="b1"), ["open_cultuur"], 0.9),
    (post("x", "x1", REWORDED, "carla", 3, like_count=1), ["open_cultuur"], 0.8),
    (post("mastodon", "m1", ORIGINAL + " https://example.org/rapporten", "dirk", 4), ["open_cultuur"], 0.85),
    # open_cultuur: one person, many likes: ranks after the idea above (people first, then reposts, likes)
    (post("x", "x2", "Laat nieuwe collega's in hun eerste maand elke werkwijze bevragen zonder dat iemand zucht "
          "#innoverheid", "erik", 30, like_count=50), ["open_cultuur"], 0.9),
    # leiderschap + open_cultuur (spans two themes)
    (post("bluesky", "b2", "Een wethouder die na een mislukte proef zegt 'dat was mijn verantwoordelijkheid' maakt "
          "een hele organisatie moediger #innoverheid", "fien", 50), ["leiderschap", "open_cultuur"], 0.8),
    # leiderschap with a quote-post
    (post("x", "x3", "Een goede chef is een tuinman: zorgt voor grond en water en trekt niet aan de plantjes "
          "#innoverheid", "gert", 60, like_count=3), ["leiderschap"], 0.9),
    (post("x", "x4", "Precies zo! Meer tuinmannen graag", "hans", 61, quote_of="x3"), ["leiderschap"], 0.7),
    # ruimte_voor_de_professional: hostile texts
    (post("bluesky", "b3", SCRIPT, "evil1", 70, name="<b onmouseover=alert(1)>Evil</b>"),
     ["ruimte_voor_de_professional"], 0.9),
    (post("bluesky", "b4", ONERROR, "evil2", 80, url="javascript:alert(document.domain)"),
     ["ruimte_voor_de_professional"], 0.9),
    (post("mastodon", "m2", RTL, "evil3", 90, url="data:text/html,<script>alert(1)</script>"),
     ["ruimte_voor_de_professional"], 0.9),
    (post("x", "x5", LONG, "evil4", 100), ["ruimte_voor_de_professional"], 0.9),
    (post("x", "x6", STYLE + " Geef teams een eigen budget voor experimenten", "evil5", 101),
     ["ruimte_voor_de_professional"], 0.9),
    # sturen_op_talent: one post only (too few for a chart)
    (post("bluesky", "b5", "Geef zij-instromers een eerlijke kans: kijk naar wat ze bereikten, niet naar hun cv "
          "#innoverheid", "ilse", 110), ["sturen_op_talent"], 0.9),
    # netwerken
    (post("mastodon", "m3", "Nodig bij een lastig dossier ook de collega's van de buurgemeente uit aan de "
          "koffietafel #innoverheid", "joop", 120), ["netwerken"], 0.9),
    # flexibilisering: decided by a person (the model said geen_idee)
    (post("x", "x7", "Een vaste kantoordag per team, de rest van de week werken waar het werk het best gaat "
          "#innoverheid", "karin", 130), ["geen_idee"], 0.6),
    # slimmer_organiseren: six posts of different ideas over two weeks (enough for a chart)
    *[(post("bluesky", f"s{i}", f"Idee {i} om slimmer te organiseren: {txt} #innoverheid", f"user{i}", 140 + 40 * i),
       ["slimmer_organiseren"], 0.9) for i, txt in enumerate([
           "stuur geen verslag meer rond, zet de besluitenlijst op het scherm",
           "laat de vier applicaties voor subsidie met elkaar praten",
           "laat kleine waterschappen hun salarisadministratie samen doen",
           "schrap de helft van de parafen in de lijn",
           "een login voor alle systemen van de gemeente",
           "vraag gegevens maar een keer uit bij ondernemers"])],
    # overig
    (post("bluesky", "b6", "Zet op elk aanslagbiljet bovenaan in een zin wat iemand moet doen en voor wanneer "
          "#innoverheid", "lars", 400), ["overig"], 0.9),
    (post("x", "x8", MARKDOWN, "mona", 410), ["overig"], 0.9),
    # geen_idee: three posts, two distinct
    (post("x", "x9", "Di 12 maart: open middag over hybride werken, opgeven via example.org/middag #innoverheid",
          "nina", 420), ["geen_idee"], 0.9),
    (post("x", "x10", "RT @nina: Di 12 maart: open middag over hybride werken, opgeven via example.org/middag "
          "#innoverheid", "otto", 421, is_repost=True, repost_of="x9"), ["geen_idee"], 0.9),
    (post("bluesky", "b7", "Tot wanneer kun je nog reageren op het charter? #innoverheid", "piet", 430),
     ["geen_idee"], 0.9),
    # the model is unsure: awaiting review
    (post("mastodon", "m4", "Misschien moeten we vaker samen lunchen met andere afdelingen? #innoverheid", "rita",
          440), ["netwerken"], 0.3),
    # not labelled yet
    (post("bluesky", "b8", "Vandaag veel gedachten over het charter #innoverheid", "sara", 450), None, None),
]
PERSON = {"x7": ["flexibilisering"]}
METRICS = {"eval": {"per_label": {
    "open_cultuur": {"precision": 0.81, "recall": 0.7, "f1": 0.75, "support": 40},
    "leiderschap": {"precision": 0.9, "recall": 0.6, "f1": 0.72, "support": 30},
}}}


def build(db, posts=POSTS, person=PERSON, metrics=METRICS) -> dict[str, int]:
    """Fill the database; returns {source_id: post id}."""
    with db.write() as conn:
        ids, _, _ = insert_posts(conn, [p.row() for p, _, _ in posts])
        by_sid = {sid: pid for (_, sid), pid in ids.items()}
        preds = [Prediction(by_sid[p.source_id], labels, conf, conf < 0.5)
                 for p, labels, conf in posts if labels is not None]
        replace_model_labels(conn, preds, "test-1")
        for sid, labels in person.items():
            set_person_labels(conn, by_sid[sid], labels, "tester")
        conn.execute(ModelRecord.__table__.insert().values(version="test-1", trained_at=T0, metrics=metrics))
        runs = HarvestRun.__table__
        conn.execute(runs.insert(), [{"error": None, **run} for run in [
            {"source": "bluesky", "hashtag": "innoverheid", "instance": "", "started_at": T0 + timedelta(days=20),
             "finished_at": T0 + timedelta(days=20, minutes=5), "outcome": "ok"},
            {"source": "x", "hashtag": "innoverheid", "instance": "", "started_at": T0 + timedelta(days=19),
             "finished_at": T0 + timedelta(days=19, minutes=1), "outcome": "ok"},
            {"source": "x", "hashtag": "innoverheid", "instance": "", "started_at": T0 + timedelta(days=20),
             "finished_at": T0 + timedelta(days=20, minutes=1), "outcome": "failed",
             "error": "x: the platform refused the credentials (401); check the environment variable X_BEARER_TOKEN"},
            {"source": "mastodon", "hashtag": "innoverheid", "instance": "https://mastodon.nl",
             "started_at": T0 + timedelta(days=20), "finished_at": T0 + timedelta(days=20, minutes=2), "outcome": "ok"},
        ]])
    return by_sid


def config(tmp_path, **report) -> Config:
    return Config.model_validate({"report": report, "database": "sqlite:///unused.db"}).model_copy(
        update={"base_dir": str(tmp_path)})


def digest(db, tmp_path, out="out", cfg=None, **kw):
    cfg = cfg or config(tmp_path)
    result = write_digest(cfg, db, out_dir=tmp_path / out, **kw)
    return result, result.html_path.read_text(encoding="utf-8"), result.md_path.read_text(encoding="utf-8")


@pytest.fixture
def known(db):
    ids = build(db)
    assign_groups(db)
    return ids


def section(html: str, label: str) -> str:
    """The HTML of one theme's section."""
    start = html.index(f'<section aria-labelledby="thema-{label}">')
    return html[start:html.index("</section>", start)]


def groups_of(db) -> dict[str, int]:
    t = PostRow.__table__
    with db.read() as conn:
        return {sid: g for sid, g in conn.execute(t.select().with_only_columns(t.c.source_id, t.c.group_id))}


# ---------------------------------------------------------------- counts


def test_counts_per_theme_and_in_total(db, known, tmp_path):
    result, html, md = digest(db, tmp_path)
    assert (result.n_posts, result.n_ideas) == (29, 20)
    expected = {  # ideas, posts, people
        "open_cultuur": (3, 6, 6), "leiderschap": (2, 3, 3), "ruimte_voor_de_professional": (5, 5, 5),
        "sturen_op_talent": (1, 1, 1), "netwerken": (1, 1, 1), "flexibilisering": (1, 1, 1),
        "slimmer_organiseren": (6, 6, 6), "overig": (2, 2, 2),
    }
    for label, (ideas, posts, people) in expected.items():
        idea_word = "1 idee" if ideas == 1 else f"{ideas} ideeën"
        post_word = "1 bericht" if posts == 1 else f"{posts} berichten"
        people_word = "1 persoon" if people == 1 else f"{people} mensen"
        assert f"{idea_word} · {post_word} · {people_word}" in section(html, label), label
    assert "20 ideeën in 29 berichten van 24 mensen." in html
    # the unsure post is counted apart, geen_idee is a count only, the unlabelled post is mentioned
    assert "Nog te controleren: 1 idee in 1 bericht." in html
    assert "Misschien horen hier nog meer ideeën" in section(html, "netwerken")
    assert "3 berichten, waarvan 2 verschillend" in html
    assert "open middag over hybride werken" not in html
    assert "Nog niet door de computer ingedeeld, en daarom nog niet meegeteld: 1 bericht." in html
    # a person's label wins over the model's geen_idee
    assert "Een vaste kantoordag per team" in section(html, "flexibilisering")


def test_the_bulk_label_rule_agrees_with_effective_labels(db, known):
    from report.digest_data import BIT, labels_frame

    with db.read() as conn:
        frame = labels_frame(conn, None, None)
        eff = effective_labels(conn, list(known.values()))
    assert set(frame.index) == set(eff)
    for pid, e in eff.items():
        assert frame.loc[pid, "mask"] == sum(BIT[lab] for lab in e.labels)
        assert bool(frame.loc[pid, "person"]) == (e.origin == "person")
        assert bool(frame.loc[pid, "needs_review"]) == e.needs_review


# ---------------------------------------------------------------- grouping


def test_repost_crosspost_rewording_and_quote_join_their_original(db, known, tmp_path):
    g = groups_of(db)
    assert g["b1"] == g["b1#repost:bert"] == g["x1"] == g["m1"] == known["b1"]
    assert g["x4"] == g["x3"] == known["x3"]  # quote-post
    assert g["x10"] == g["x9"]  # "RT @nina: ..." on X
    # template-like ideas that differ in substance stay apart
    assert len({g[f"s{i}"] for i in range(6)}) == 6
    assert len(set(g.values())) == len(g) - 5
    _, html, md = digest(db, tmp_path)
    first = section(html, "open_cultuur")
    assert "+3 vergelijkbare berichten van 3 auteurs (Bluesky, Mastodon, X (Twitter))" in first
    assert "Steun:</strong> 4 mensen · 2 keer doorgestuurd · 6 likes" in first
    assert "+1 vergelijkbaar bericht van 1 auteur" in section(html, "leiderschap")
    assert "+3 vergelijkbare berichten van 3 auteurs" in md


def test_grouping_is_incremental_and_reuses_existing_groups(db, known):
    before = groups_of(db)
    assert assign_groups(db) == 0  # nothing new: nothing to do
    new = [
        (post("mastodon", "m9", "Zet de onderzoeksrapporten die we laten maken meteen online, ook als de uitkomst "
              "ons niet goed uitkomt. Echt! #innoverheid", "tina", 500), ["open_cultuur"], 0.9),
        (post("x", "x20", "RT @gert: Een goede chef is een tuinman", "umar", 501, is_repost=True, repost_of="x3"),
         ["leiderschap"], 0.9),
        (post("bluesky", "lost#1", "Schaf de prikklok af, meet wat we opleveren #innoverheid", "vera", 502,
              is_repost=True, repost_of="never-harvested"), ["flexibilisering"], 0.9),
        (post("bluesky", "lost#2", "Schaf de prikklok af, meet wat we opleveren #innoverheid", "wim", 503,
              is_repost=True, repost_of="never-harvested"), ["flexibilisering"], 0.9),
        (post("bluesky", "b30", "Geef elke gemeente een eigen innovatiebudget voor de wijkteams #innoverheid",
              "xena", 504), ["overig"], 0.9),
    ]
    with db.write() as conn:
        insert_posts(conn, [p.row() for p, _, _ in new])
    assert assign_groups(db) == 5
    after = groups_of(db)
    assert {k: after[k] for k in before} == before  # existing groups untouched
    assert after["m9"] == before["b1"]
    assert after["x20"] == before["x3"]
    assert after["lost#1"] == after["lost#2"] != after["b30"]
    assert after["b30"] not in before.values()


def test_a_group_whose_representative_was_erased_gets_a_new_one(db, known):
    from storage.posts import delete_posts

    with db.write() as conn:
        delete_posts(conn, [known["b1"]])
        insert_posts(conn, [post("bluesky", "b40", "Zet de onderzoeksrapporten die we laten maken meteen online, "
                                 "ook als de uitkomst ons niet goed uitkomt #innoverheid", "yara", 600).row()])
    assign_groups(db)
    g = groups_of(db)
    assert g["b1#repost:bert"] == g["x1"] == g["m1"] == g["b40"] == known["b1#repost:bert"]


# ---------------------------------------------------------------- ordering


def test_themes_in_charter_order_and_ideas_by_support(db, known, tmp_path):
    _, html, md = digest(db, tmp_path)
    names = ["Open cultuur", "Leiderschap", "Ruimte voor de professional", "Sturen op talent", "Netwerken",
             "Flexibilisering", "Slimmer organiseren", "Overige ideeën: buiten de zeven thema’s",
             "Nog te controleren: hier twijfelt de computer", "Hoe betrouwbaar is dit overzicht?"]
    positions = [html.index(f">{name}</h2>") for name in names]
    assert positions == sorted(positions)
    md_positions = [md.index(f"\n## {name}\n") for name in names]
    assert md_positions == sorted(md_positions)
    # 4 people beat 1 person with 50 likes; 50 likes beat none; the two-theme idea is marked in both themes
    first = section(html, "open_cultuur")
    order = [first.index(t) for t in ("onderzoeksrapporten", "elke werkwijze bevragen", "mislukte proef")]
    assert order == sorted(order)
    assert "Ook bij: Leiderschap" in first
    assert "Ook bij: Open cultuur" in section(html, "leiderschap")


# ---------------------------------------------------------------- safety


def test_hostile_texts_are_escaped_and_inert(db, known, tmp_path):
    _, html, md = digest(db, tmp_path)
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in html
    lowered = html.lower()
    for tag in ("<script", "<img", "<link", "<iframe", "<object", "<style>body", "<b onmouseover"):
        assert tag not in lowered, tag
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert "onerror=&#34;" in html and 'onerror="' not in html
    assert "&lt;b onmouseover=alert(1)&gt;Evil&lt;/b&gt;" in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith(("https://", "http://", "#")) for h in hrefs), hrefs
    assert not re.search(r'(src|href)="?(javascript|data):', html)
    for anchor in re.findall(r"<a [^>]*href=\"http[^>]*>", html):
        assert 'rel="noopener noreferrer nofollow"' in anchor
    assert "javascript:alert(document.domain)" in html  # shown as text, not as a link
    # right-to-left override isolated inside <bdi>, in a dir=auto block
    assert re.search('<blockquote dir="auto"><bdi>\u202eLaat de professional', html)
    # the 10,000-character post: an excerpt, the whole text behind <details>
    ruimte = section(html, "ruimte_voor_de_professional")
    assert "<details><summary>Toon de hele tekst (10.368 tekens)</summary>" in ruimte
    assert ruimte.count("EINDE #innoverheid") == 1
    # Markdown: no links, images or HTML from the data
    quoted = next(line for line in md.splitlines() if "track.png" in line)
    assert not re.search(r"(?<!\\)[\[\]]", quoted)  # every bracket escaped: no link, no image
    assert "<script" not in md.lower()
    assert "!\\[x\\](http://127.0.0.1:9/track.png) \\[klik hier\\](javascript:alert(1))" in md
    assert "&lt;script&gt;" in md and "\u202e" not in md


# ---------------------------------------------------------------- new since the previous digest


def test_new_since_the_previous_digest(db, known, tmp_path):
    first, html1, _ = digest(db, tmp_path)
    assert "Dit is het eerste overzicht in deze map." in html1
    assert 'class="badge new"' not in html1
    with db.write() as conn:
        ids, _, _ = insert_posts(conn, [post("bluesky", "b50", "Laat elk team een keer per jaar een dag meelopen bij "
                                             "een andere overheid #innoverheid", "zoe", 700).row()])
        replace_model_labels(conn, [Prediction(ids[("bluesky", "b50")], ["netwerken"], 0.9, False)], "test-1")
    assign_groups(db)
    second, html2, md2 = digest(db, tmp_path)
    new_group = groups_of(db)["b50"]
    assert new_group in second.shown_group_ids and new_group not in first.shown_group_ids
    netwerken = section(html2, "netwerken")
    card = netwerken[netwerken.index(f'id="netwerken-{new_group}"'):]
    assert card.index('class="badge new"') < card.index("</li>")
    assert html2.count('class="badge new"') == 1
    assert "binnengekomen: 1 nieuw bericht, met 1 nieuw idee." in html2
    assert "nieuw sinds het vorige overzicht: 1" in netwerken
    assert "**Nieuw**" in md2
    with db.read() as conn:
        rows = conn.execute(DigestRecord.__table__.select().order_by(DigestRecord.__table__.c.id)).all()
    assert [r.group_ids for r in rows] == [first.shown_group_ids, second.shown_group_ids]
    assert second.previous_at == rows[0].created_at


# ---------------------------------------------------------------- language, pseudonyms, quality


def test_english_digest(db, known, tmp_path):
    _, html, md = digest(db, tmp_path, cfg=config(tmp_path, language="en"))
    assert '<html lang="en">' in html
    for name in ("Open culture", "Leadership", "Room for the professional", "Managing by talent", "Networking",
                 "Flexible working", "Organising smarter", "Still to check: the computer is unsure here",
                 "How reliable is this digest?"):
        assert f">{name}</h2>" in html and f"## {name}" in md
    assert "+3 similar posts by 3 authors" in html and "Ideas with the most support" in html
    assert "Ideeën met de meeste steun" not in html and "mensen" not in html


def test_pseudonyms_replace_authors(db, known, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INNOVERHEID_PSEUDONYM_KEY", "test-key")
    _, html, md = digest(db, tmp_path, cfg=config(tmp_path, pseudonymize=True))
    assert pseudonym("anna", b"test-key") in html
    assert pseudonym("anna", b"test-key").replace("_", "\\_") in md
    for name in ("Anna", "@anna", "Gert", "@gert"):
        assert f"Door <bdi>{name}" not in html and f"Door {name}" not in md
    assert "schuilnamen" in html and capsys.readouterr().err == ""
    monkeypatch.delenv("INNOVERHEID_PSEUDONYM_KEY")
    _, html2, _ = digest(db, tmp_path, out="out2", cfg=config(tmp_path, pseudonymize=True))
    err = capsys.readouterr().err
    assert "INNOVERHEID_PSEUDONYM_KEY" in err and "random" in err
    assert pseudonym("anna", b"test-key") not in html2 and "Door <bdi>Anna" not in html2
    assert "de sleutel voor de schuilnamen ontbrak" in html2


def test_quality_appendix(db, known, tmp_path):
    _, html, md = digest(db, tmp_path)
    quality = html[html.index('id="quality"'):]
    assert "Indeling door model test-1" in quality
    assert "<td>Open cultuur</td>\n<td class=\"num\">81%</td><td class=\"num\">70%</td>" in quality
    assert quality.count("niet beschikbaar") >= 7 * 3  # themes without figures say so
    assert "4% van de ingedeelde berichten (1 van 28)" in quality
    assert "mislukt" in quality and "X_BEARER_TOKEN" in quality and "laatst gelukt" in quality
    assert "7 dagen" in quality and "deel van het netwerk" in quality and "10.000 resultaten" in quality
    assert "nog nooit opgehaald" in quality  # an enabled Mastodon server that never ran
    assert "Precisie" in quality and "Vangst" in quality and "F1" in quality


def test_model_figures_are_read_defensively():
    from report.digest_data import per_label_metrics

    figures = {"leiderschap": {"precision": 0.5, "recall": "0.25", "f1": None}}
    for shape in ({"per_label": figures}, {"cv": {"per_label": figures}}, {"eval": {"per_label": figures}}):
        assert per_label_metrics(shape)["leiderschap"] == {"precision": 0.5, "recall": 0.25, "f1": None,
                                                           "support": None}
    for junk in (None, [], {"eval": "x"}, {"per_label": {"a": 1}}, {"per_label": {}}):
        assert per_label_metrics(junk) is None


def test_no_model_figures_say_not_available(db, tmp_path):
    build(db, metrics=None)
    _, html, _ = digest(db, tmp_path)
    assert "Voor dit model zijn geen meetcijfers per thema beschikbaar. (niet beschikbaar)" in html


def test_low_counts_warn_instead_of_a_chart(db, known, tmp_path):
    _, html, md = digest(db, tmp_path, cfg=config(tmp_path, min_posts_for_chart=5))
    talent, slimmer = section(html, "sturen_op_talent"), section(html, "slimmer_organiseren")
    assert "Te weinig berichten (1) voor een betrouwbare grafiek" in talent and "<svg" not in talent
    assert "<svg" in slimmer and "Te weinig" not in slimmer
    assert "Berichten per week:" in md or "Berichten per dag:" in md


def test_since_and_until_limit_the_period(db, known, tmp_path):
    since, until = T0 + timedelta(hours=135), T0 + timedelta(hours=345)
    result, html, _ = digest(db, tmp_path, since=since, until=until)
    assert result.n_posts == 6  # the six "slimmer organiseren" posts, s0..s5
    first, last = T0 + timedelta(hours=140), T0 + timedelta(hours=340)
    assert f"Berichten van {first.day} februari 2013 tot en met {last.day} februari 2013" in html
    assert "Gekozen periode: vanaf 10 februari 2013, tot 18 februari 2013 19:00 CET." in html
    assert "0 ideeën · 0 berichten · 0 mensen" in section(html, "open_cultuur")
    assert "6 ideeën · 6 berichten · 6 mensen" in section(html, "slimmer_organiseren")


def test_an_empty_database_gives_an_honest_empty_digest(db, tmp_path):
    result, html, md = digest(db, tmp_path)
    assert result.n_posts == 0 and "Er zijn (nog) geen berichten in deze periode." in html
    for label in LABELS_THEMES:
        assert f'id="thema-{label}"' in html
    assert "Er is nog geen eigen model getraind" in md


def test_strings_need_no_escaping():
    from report import i18n

    for table in (i18n.STRINGS, i18n.MEANINGS, i18n.THEME_NAMES, i18n.BLIND_SPOTS):
        for lang in ("nl", "en"):
            assert table[lang].keys() == table["nl"].keys()
            for key, text in table[lang].items():
                assert not set(text) & set("&<>\"'"), (lang, key)


def test_digest_command(workdir, run_cli, db):
    build(db)
    result = run_cli("digest", "--out", "verslag", "--since", "2013-02-01")
    assert result.exit_code == 0, result.stderr
    assert (workdir / "verslag" / "digest.html").is_file() and (workdir / "verslag" / "digest.md").is_file()
    assert "20 ideas in 29 posts" in result.stdout  # the command grouped the posts first
    default = run_cli("digest")
    assert default.exit_code == 0 and (workdir / "reports" / "digest.html").is_file()
    bad = run_cli("digest", "--since", "gisteren")
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.stderr and "Traceback" not in bad.stderr
    backwards = run_cli("digest", "--since", "2013-03-01", "--until", "2013-02-01")
    assert backwards.exit_code == 2 and "--since" in backwards.stderr
    (workdir / "afile").write_text("x")
    assert run_cli("digest", "--out", "afile").exit_code == 2


def test_the_daily_chart_counts_a_last_day_that_starts_earlier_than_the_first_post():
    """Days are calendar days: a post at 00:30 on the last day must still land in a bar."""
    import pandas as pd

    from report.digest_data import time_buckets

    utc = timezone.utc
    created = pd.Series(pd.to_datetime([datetime(2013, 2, 4, 23, 0, tzinfo=utc), datetime(2013, 2, 5, 1, 0, tzinfo=utc),
                                        datetime(2013, 2, 7, 0, 30, tzinfo=utc)]))
    unit, start, n, idx = time_buckets(created, None, None)
    assert unit == "day" and n == 4 and list(idx) == [0, 1, 3]
