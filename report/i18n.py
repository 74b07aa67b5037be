"""The digest's words, in Dutch (default) and English, and the codebook's one-line meanings.

Written for drafters who are not technical: every heading says what it shows in plain words.
No string here contains & < > " or a straight apostrophe, so the Markdown template (which
escapes like HTML) prints them unchanged; Dutch plurals use the typographic apostrophe (thema’s).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from markupsafe import Markup

THEME_NAMES = {
    "nl": {
        "open_cultuur": "Open cultuur",
        "leiderschap": "Leiderschap",
        "ruimte_voor_de_professional": "Ruimte voor de professional",
        "sturen_op_talent": "Sturen op talent",
        "netwerken": "Netwerken",
        "flexibilisering": "Flexibilisering",
        "slimmer_organiseren": "Slimmer organiseren",
        "overig": "Overige ideeën",
        "geen_idee": "Geen idee",
    },
    "en": {
        "open_cultuur": "Open culture",
        "leiderschap": "Leadership",
        "ruimte_voor_de_professional": "Room for the professional",
        "sturen_op_talent": "Managing by talent",
        "netwerken": "Networking",
        "flexibilisering": "Flexible working",
        "slimmer_organiseren": "Organising smarter",
        "overig": "Other ideas",
        "geen_idee": "Not an idea",
    },
}

# One line each, from the definitions in codebook.md.
MEANINGS = {
    "nl": {
        "open_cultuur": "Openheid en transparantie, en een klimaat waarin je fouten mag maken en ervan leert.",
        "leiderschap": "Wat leidinggevenden en bestuurders doen: vertrouwen geven, het goede voorbeeld geven, "
                       "vernieuwers de ruimte geven en dekken.",
        "ruimte_voor_de_professional": "Meer vrijheid en vertrouwen voor de vakmensen: eigen oordeel boven "
                                       "protocol, beslissen waar het werk gebeurt, minder verantwoordingslast.",
        "sturen_op_talent": "Personeelsbeleid vanuit wat mensen kunnen en willen: werven op vaardigheden, "
                            "leren, ontwikkelen en loopbaan.",
        "netwerken": "Mensen en organisaties over grenzen heen verbinden: kennis delen, samenwerken tussen "
                     "overheden, samen met inwoners ontwerpen.",
        "flexibilisering": "Flexibel werken: thuis of op een andere plek, eigen werktijden, flexibele contracten, "
                           "tijdelijk werken bij een andere overheid.",
        "slimmer_organiseren": "Processen, structuren en middelen die het werk eenvoudiger maken: minder "
                               "vergaderen, minder parafen, ICT die werkt, samen inkopen.",
        "overig": "Echte ideeën voor een betere overheid die buiten de zeven thema’s vallen, zoals beleid of "
                  "de dienstverlening aan inwoners.",
        "geen_idee": "Berichten zonder voorstel: aankondigingen, bedankjes, losse links en vragen.",
    },
    "en": {
        "open_cultuur": "Openness and transparency, and a climate where mistakes are allowed and learnt from.",
        "leiderschap": "What managers and executives do: give trust, set the example, give innovators room "
                       "and cover.",
        "ruimte_voor_de_professional": "More freedom and trust for professionals: their own judgement over "
                                       "protocol, decisions where the work happens, less paperwork.",
        "sturen_op_talent": "People management based on what people can do and want: hiring on skills, "
                            "learning, development and careers.",
        "netwerken": "Connecting people and organisations across boundaries: sharing knowledge, working "
                     "together across governments, designing with residents.",
        "flexibilisering": "Flexible work: at home or elsewhere, own working hours, flexible contracts, "
                           "working for another government for a while.",
        "slimmer_organiseren": "Processes, structures and tools that make the work simpler: fewer meetings, "
                               "fewer sign-offs, IT that works, buying together.",
        "overig": "Genuine ideas for a better government outside the seven themes, such as policy or services "
                  "for residents.",
        "geen_idee": "Posts without a proposal: announcements, thanks, bare links and questions.",
    },
}

SOURCE_NAMES = {"x": "X (Twitter)", "bluesky": "Bluesky", "mastodon": "Mastodon"}

# What each platform cannot show us, said plainly.
BLIND_SPOTS = {
    "nl": {
        "x": "X laat alleen de berichten van de laatste 7 dagen doorzoeken: wat ouder is en niet bij een eerdere "
             "ronde is opgehaald, ontbreekt. Het abonnement begrenst ook het aantal berichten per maand.",
        "mastodon": "Elke Mastodon-server ziet maar een deel van het netwerk: berichten van servers die geen "
                    "contact hebben met de doorzochte servers, ontbreken.",
        "bluesky": "De zoekfunctie van Bluesky geeft hooguit zo’n 10.000 resultaten per zoekvraag en vindt niet "
                   "gegarandeerd elk bericht.",
        "other": "Ingelezen uit een bestand: alleen wat in dat bestand stond.",
    },
    "en": {
        "x": "X only lets us search the last 7 days: anything older that an earlier round did not collect is "
             "missing. The plan also caps the number of posts per month.",
        "mastodon": "Each Mastodon server sees only part of the network: posts from servers that have no contact "
                    "with the servers searched are missing.",
        "bluesky": "Bluesky search returns at most about 10,000 results per query and does not promise to find "
                   "every post.",
        "other": "Loaded from a file: only what that file contained.",
    },
}

STRINGS = {
    "nl": {
        "title": "Ideeën onder #innoverheid, per thema van het charter",
        "period": "Berichten van {first} tot en met {last}",
        "period_empty": "Er zijn (nog) geen berichten in deze periode.",
        "window": "Gekozen periode: {since}, {until}.",
        "window_since": "vanaf {when}",
        "window_until": "tot {when}",
        "window_open": "zonder grens",
        "made": "Gemaakt op {when}.",
        "first_digest": "Dit is het eerste overzicht in deze map.",
        "since_previous": "Sinds het vorige overzicht ({when}) binnengekomen: {posts}, met {ideas}.",
        "howto_title": "Zo lees je dit overzicht",
        "howto_idea": "Een idee is één voorstel. Als mensen hetzelfde voorstel doorsturen, op een ander platform "
                      "zetten of net iets anders verwoorden, tellen we dat als één idee met meer steun.",
        "howto_support": "Steun is het aantal verschillende mensen dat het idee plaatste of doorstuurde; daarna "
                         "tellen hoe vaak het werd doorgestuurd en hoeveel likes het kreeg.",
        "howto_machine": "Een computerprogramma heeft de berichten in thema’s ingedeeld. Het maakt fouten; "
                         "achteraan staat hoe betrouwbaar het is en wat nog gecontroleerd moet worden.",
        "summary_title": "In het kort",
        "summary_line": "{ideas} in {posts} van {authors}.",
        "chart_overview": "Aantal ideeën per thema",
        "contents": "Inhoud",
        "stats": "{ideas} · {posts} · {authors}",
        "new_in_theme": "nieuw sinds het vorige overzicht: {n}",
        "pending_in_theme": "Misschien horen hier nog meer ideeën, maar daarover twijfelt de computer: {n} "
                            "(zie ‘Nog te controleren’).",
        "chart_title": "Berichten per {unit}",
        "chart_low": "Te weinig berichten ({n}) voor een betrouwbare grafiek; trek hier nog geen conclusies uit.",
        "top_ideas": "Ideeën met de meeste steun",
        "no_ideas": "Nog geen ideeën bij dit thema.",
        "more_ideas": "Niet getoond, met minder steun: {n} (de export bevat alles).",
        "support": "Steun",
        "people": "{n} mensen",
        "people_one": "1 persoon",
        "reposts": "{n} keer doorgestuurd",
        "reposts_one": "1 keer doorgestuurd",
        "likes": "{n} likes",
        "likes_one": "1 like",
        "similar": "+{n} vergelijkbare berichten van {m} auteurs",
        "similar_one": "+1 vergelijkbaar bericht van 1 auteur",
        "similar_one_author": "+{n} vergelijkbare berichten van 1 auteur",
        "also_in": "Ook bij:",
        "new": "Nieuw",
        "new_legend": "‘Nieuw’ betekent: stond niet in het vorige overzicht.",
        "by": "Door",
        "unknown_author": "onbekende auteur",
        "on": "op",
        "via": "via",
        "open_original": "Bekijk het originele bericht",
        "link_not_web": "Adres (geen weblink):",
        "no_link": "geen link bekend",
        "full_text": "Toon de hele tekst ({n} tekens)",
        "excerpt_note": "ingekort",
        "review_title": "Nog te controleren: hier twijfelt de computer",
        "review_intro": "Bij deze ideeën was de computer niet zeker genoeg van het thema. Ze tellen hierboven "
                        "niet mee. Een mens kan ze indelen met het commando ‘innoverheid review’.",
        "review_count": "Nog te controleren: {ideas} in {posts}.",
        "review_guess": "Gok van de computer:",
        "overig_title": "Overige ideeën: buiten de zeven thema’s",
        "overig_intro": "Echte voorstellen die niet onder een thema van het charter vallen.",
        "none": "Geen.",
        "not_ideas": "Geen idee (aankondigingen, bedankjes, losse links, vragen) en daarom niet in dit overzicht: "
                     "{posts}, waarvan {groups}.",
        "unlabelled": "Nog niet door de computer ingedeeld, en daarom nog niet meegeteld: {n}.",
        "n_ideas": "{n} ideeën",
        "n_ideas_one": "1 idee",
        "n_posts": "{n} berichten",
        "n_posts_one": "1 bericht",
        "n_new_ideas": "{n} nieuwe ideeën",
        "n_new_ideas_one": "1 nieuw idee",
        "n_new_posts": "{n} nieuwe berichten",
        "n_new_posts_one": "1 nieuw bericht",
        "n_distinct": "{n} verschillend",
        "quality_title": "Hoe betrouwbaar is dit overzicht?",
        "model_line": "Indeling door model {version}, getraind op {when}.",
        "model_none": "Er is nog geen eigen model getraind; de indeling komt van het meegeleverde startmodel.",
        "model_versions": "Gebruikte modelversies: {versions}.",
        "eval_title": "Hoe goed het model elk thema herkent",
        "eval_intro": "Gemeten op berichten waarvan mensen het juiste thema al wisten. Precisie: van de berichten "
                      "die het model onder een thema zet, hoeveel procent hoort daar echt. Vangst: van de berichten "
                      "die echt onder een thema horen, hoeveel procent het model vindt. Samen: één cijfer dat "
                      "beide combineert (de F1-score); 100 is perfect.",
        "eval_theme": "Thema",
        "eval_precision": "Precisie",
        "eval_recall": "Vangst",
        "eval_f1": "Samen (F1)",
        "eval_support": "Getest op",
        "not_available": "niet beschikbaar",
        "eval_missing": "Voor dit model zijn geen meetcijfers per thema beschikbaar.",
        "checked": "{pct} van de ingedeelde berichten ({n} van {total}) is door een mens gecontroleerd; de rest "
                   "is alleen door de computer ingedeeld.",
        "checked_none": "Nog geen enkel bericht is ingedeeld.",
        "sources_title": "Waar de berichten vandaan komen",
        "sources_intro": "Per bron: wanneer er voor het laatst is opgehaald, of dat lukte, en wat de bron niet "
                         "kan laten zien.",
        "src_source": "Bron",
        "src_last": "Laatst opgehaald",
        "src_result": "Resultaat",
        "src_blind": "Wat ontbreekt",
        "src_never": "nog nooit opgehaald",
        "src_last_ok": "laatst gelukt: {when}",
        "src_none": "Er is nog niets opgehaald.",
        "outcome_ok": "gelukt",
        "outcome_failed": "mislukt",
        "outcome_skipped": "overgeslagen",
        "outcome_interrupted": "onderbroken",
        "outcome_running": "bezig",
        "grouping_note": "Berichten die hetzelfde voorstel doen (doorgestuurd, op een ander platform geplaatst of "
                         "licht herschreven), zijn automatisch samengevoegd tot één idee. Ook dat gaat soms mis.",
        "pseudo_note": "Namen van auteurs zijn vervangen door schuilnamen. De tekst van de berichten zelf en de "
                       "links naar het origineel kunnen nog namen bevatten.",
        "pseudo_random": "Let op: de sleutel voor de schuilnamen ontbrak; de schuilnamen verschillen daardoor van "
                         "die in andere overzichten.",
        "footer": "Gemaakt met innoverheid. Alle teksten zijn letterlijk overgenomen uit openbare berichten.",
        "unit_day": "dag",
        "unit_week": "week",
        "unit_month": "maand",
        "chart_desc": "Staafdiagram: {total} berichten, van {first} tot {last}; meeste in één {unit}: {max}.",
    },
    "en": {
        "title": "Ideas under #innoverheid, by theme of the charter",
        "period": "Posts from {first} to {last}",
        "period_empty": "There are no posts in this period (yet).",
        "window": "Chosen period: {since}, {until}.",
        "window_since": "from {when}",
        "window_until": "until {when}",
        "window_open": "open-ended",
        "made": "Made on {when}.",
        "first_digest": "This is the first digest in this folder.",
        "since_previous": "Arrived since the previous digest ({when}): {posts}, with {ideas}.",
        "howto_title": "How to read this digest",
        "howto_idea": "An idea is one proposal. When people pass the same proposal on, post it on another "
                      "platform or word it slightly differently, we count it as one idea with more support.",
        "howto_support": "Support is the number of different people who posted or passed on the idea; after that "
                         "come how often it was passed on and how many likes it got.",
        "howto_machine": "A computer program sorted the posts into themes. It makes mistakes; the end of this "
                         "page says how reliable it is and what still needs checking.",
        "summary_title": "In short",
        "summary_line": "{ideas} in {posts} by {authors}.",
        "chart_overview": "Number of ideas per theme",
        "contents": "Contents",
        "stats": "{ideas} · {posts} · {authors}",
        "new_in_theme": "new since the previous digest: {n}",
        "pending_in_theme": "More ideas may belong here, but the computer is unsure about them: {n} (see ‘Still "
                            "to check’).",
        "chart_title": "Posts per {unit}",
        "chart_low": "Too few posts ({n}) for a reliable chart; do not draw conclusions from this yet.",
        "top_ideas": "Ideas with the most support",
        "no_ideas": "No ideas under this theme yet.",
        "more_ideas": "Not shown, with less support: {n} (the export has everything).",
        "support": "Support",
        "people": "{n} people",
        "people_one": "1 person",
        "reposts": "passed on {n} times",
        "reposts_one": "passed on once",
        "likes": "{n} likes",
        "likes_one": "1 like",
        "similar": "+{n} similar posts by {m} authors",
        "similar_one": "+1 similar post by 1 author",
        "similar_one_author": "+{n} similar posts by 1 author",
        "also_in": "Also under:",
        "new": "New",
        "new_legend": "‘New’ means: not in the previous digest.",
        "by": "By",
        "unknown_author": "unknown author",
        "on": "on",
        "via": "via",
        "open_original": "See the original post",
        "link_not_web": "Address (not a web link):",
        "no_link": "no link known",
        "full_text": "Show the whole text ({n} characters)",
        "excerpt_note": "shortened",
        "review_title": "Still to check: the computer is unsure here",
        "review_intro": "For these ideas the computer was not sure enough of the theme. They are not counted "
                        "above. A person can sort them with the command ‘innoverheid review’.",
        "review_count": "Still to check: {ideas} in {posts}.",
        "review_guess": "The computer’s guess:",
        "overig_title": "Other ideas: outside the seven themes",
        "overig_intro": "Genuine proposals that do not fall under a theme of the charter.",
        "none": "None.",
        "not_ideas": "Not an idea (announcements, thanks, bare links, questions) and therefore left out of this "
                     "digest: {posts}, of which {groups}.",
        "unlabelled": "Not sorted by the computer yet, and therefore not counted yet: {n}.",
        "n_ideas": "{n} ideas",
        "n_ideas_one": "1 idea",
        "n_posts": "{n} posts",
        "n_posts_one": "1 post",
        "n_new_ideas": "{n} new ideas",
        "n_new_ideas_one": "1 new idea",
        "n_new_posts": "{n} new posts",
        "n_new_posts_one": "1 new post",
        "n_distinct": "{n} distinct",
        "quality_title": "How reliable is this digest?",
        "model_line": "Sorted by model {version}, trained on {when}.",
        "model_none": "No model has been trained here yet; the sorting comes from the bundled starter model.",
        "model_versions": "Model versions used: {versions}.",
        "eval_title": "How well the model recognises each theme",
        "eval_intro": "Measured on posts whose right theme people already knew. Precision: of the posts the model "
                      "puts under a theme, the percentage that really belongs there. Recall: of the posts that "
                      "really belong under a theme, the percentage the model finds. Combined: one figure for "
                      "both (the F1 score); 100 is perfect.",
        "eval_theme": "Theme",
        "eval_precision": "Precision",
        "eval_recall": "Recall",
        "eval_f1": "Combined (F1)",
        "eval_support": "Tested on",
        "not_available": "not available",
        "eval_missing": "No per-theme figures are available for this model.",
        "checked": "{pct} of the sorted posts ({n} of {total}) were checked by a person; the rest were sorted by "
                   "the computer only.",
        "checked_none": "No post has been sorted yet.",
        "sources_title": "Where the posts come from",
        "sources_intro": "Per source: when posts were last collected, whether that worked, and what the source "
                         "cannot show.",
        "src_source": "Source",
        "src_last": "Last collected",
        "src_result": "Result",
        "src_blind": "What is missing",
        "src_never": "never collected",
        "src_last_ok": "last success: {when}",
        "src_none": "Nothing has been collected yet.",
        "outcome_ok": "succeeded",
        "outcome_failed": "failed",
        "outcome_skipped": "skipped",
        "outcome_interrupted": "interrupted",
        "outcome_running": "running",
        "grouping_note": "Posts making the same proposal (passed on, posted on another platform or lightly "
                         "reworded) were merged into one idea automatically. That can go wrong too.",
        "pseudo_note": "Authors’ names were replaced by pseudonyms. The text of the posts and the links to the "
                       "originals may still contain names.",
        "pseudo_random": "Note: the key for the pseudonyms was missing, so the pseudonyms differ from those in "
                         "other digests.",
        "footer": "Made with innoverheid. All texts are quoted verbatim from public posts.",
        "unit_day": "day",
        "unit_week": "week",
        "unit_month": "month",
        "chart_desc": "Bar chart: {total} posts, from {first} to {last}; most in one {unit}: {max}.",
    },
}

_MONTHS = {
    "nl": ["januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
           "november", "december"],
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
}
_SHORT_MONTHS = {lang: [m[:3] for m in months] for lang, months in _MONTHS.items()}


class Words:
    """The strings of one language: `w("key", n=3)` formats, `w.theme(label)`, `w.number(1234)`."""

    def __init__(self, lang: str, timezone: str = "UTC"):
        self.lang = lang if lang in STRINGS else "nl"
        self.strings = STRINGS[self.lang]
        self.tz = ZoneInfo(timezone)

    def __call__(self, key: str, **values) -> Markup:
        values = {k: self.number(v) if isinstance(v, int) and not isinstance(v, bool) else v
                  for k, v in values.items()}
        # Markup.format escapes every value that is not Markup already: data never reaches a page unescaped.
        return Markup(self.strings[key]).format(**values)

    def count(self, key: str, n: int) -> str:
        """A counted phrase with the singular form for 1: count("people", 1) -> "1 persoon"."""
        return self(f"{key}_one") if n == 1 and f"{key}_one" in self.strings else self(key, n=n)

    def similar(self, n: int, m: int) -> str:
        """+N vergelijkbare berichten van M auteurs (with the singular forms where they apply)."""
        if n == 1:
            return self("similar_one")
        return self("similar_one_author", n=n) if m == 1 else self("similar", n=n, m=m)

    def theme(self, label: str) -> str:
        return THEME_NAMES[self.lang].get(label, label)

    def meaning(self, label: str) -> str:
        return MEANINGS[self.lang].get(label, "")

    def source(self, name: str) -> str:
        return SOURCE_NAMES.get(name, name)

    def blind_spot(self, source: str) -> str:
        spots = BLIND_SPOTS[self.lang]
        return spots.get(source, spots["other"])

    def number(self, n: int) -> str:
        text = f"{n:,}"
        return text.replace(",", ".") if self.lang == "nl" else text

    def percent(self, share: float) -> str:
        return f"{round(share * 100)}%"

    def date(self, dt: datetime | None) -> str:
        if dt is None:
            return "-"
        return f"{dt.day} {_MONTHS[self.lang][dt.month - 1]} {dt.year}"

    def short_date(self, dt: datetime) -> str:
        return f"{dt.day} {_SHORT_MONTHS[self.lang][dt.month - 1]}"

    def moment(self, dt: datetime | None) -> str:
        """A point in time in the configured time zone (schedule.timezone), e.g. 4 februari 2013 10:00 CET."""
        if dt is None:
            return "-"
        local = dt.astimezone(self.tz)
        return f"{self.date(local)} {local:%H:%M} {local.tzname()}"

    def day_or_moment(self, dt: datetime) -> str:
        """A date when dt is midnight UTC (what --since 2013-02-04 gives), else the full moment."""
        return self.date(dt) if (dt.hour, dt.minute, dt.second) == (0, 0, 0) else self.moment(dt)

    def outcome(self, outcome: str) -> str:
        return self.strings.get(f"outcome_{outcome}", outcome)
