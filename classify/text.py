"""Text normalisation before features: what a post says, without the noise of the platform.

The campaign hashtag is stripped (every post carries it, so it says nothing), URLs and
@mentions become placeholder tokens, an ``RT @x:`` prefix becomes one token (the codebook
labels a retweet by what it passes on), emoji stay as tokens, hashtags are split into words
(``#HetNieuweWerken`` and ``#hetnieuwewerken`` both give ``het nieuwe werken``), common chat
abbreviations are written out, and everything is lower-cased with accents folded. With
``lemmas=True`` Dutch words are reduced to their lemma by simplemma (offline; it ships its
own dictionary), so ``vergaderingen`` and ``vergadering`` are one feature.

`TextNormaliser` is a scikit-learn transformer so the saved Pipeline goes from raw text to
labels in one piece; it is one of the few classes the model loader trusts.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

CAMPAIGN_TAGS = ("innoverheid",)

_URL = re.compile(
    r"(?:https?://|www\.)\S+"
    r"|\b[\w-]+(?:\.[\w-]+)*\.(?:nl|com|org|net|ly|be|eu|io|gov|info|co|me|social|app|tv)(?:/\S*)?",
    re.IGNORECASE,
)
_RT_PREFIX = re.compile(r"^\s*(?:RT|rt)\s+@[\w.@-]+:?\s*")
_MENTION = re.compile(r"(?<![\w@])@[\w.-]+(?:@[\w.-]+)?")
_HASHTAG = re.compile(r"#(\w+)")
_CAMEL = re.compile(r"[A-Z]{2,}(?=[A-Z][a-z]|\d|\b)|[A-Z]?[a-z]+|[A-Z]+|\d+")
# Emoji and pictographs: each becomes a token of its own.
_EMOJI = re.compile(
    "[\U0001F000-\U0001FAFF\U00002600-\U000027BF\U00002B00-\U00002BFF\U0001F1E6-\U0001F1FF]"
)
_TOKEN = re.compile(r"_\w+_|\w+(?:[-']\w+)*|[?!€%]|" + _EMOJI.pattern)
_VARIATION = re.compile("[\ufe0f\u200d\U0001F3FB-\U0001F3FF]")
_MONTHS = ("januari|februari|maart|april|mei|juni|juli|augustus|september|oktober|november|december"
           "|jan|feb|mrt|apr|jun|jul|aug|sep|sept|okt|nov|dec")
_DATE = re.compile(r"\b\d{1,2}(?:[-/.]\d{1,2}(?:[-/.]\d{2,4})?|\s+(?:" + _MONTHS + r")\b\.?(?:\s+\d{4})?)",
                   re.IGNORECASE)
_TIME = re.compile(r"\b\d{1,2}[:.]\d{2}\s*(?:uur|u\b)?|\b\d{1,2}\s*(?:uur|u)\b", re.IGNORECASE)

# Chat abbreviations seen under the hashtag; written out so they share features with the full form.
ABBREVIATIONS = {
    "ipv": "in plaats van", "i.p.v.": "in plaats van", "mbt": "met betrekking tot", "m.b.t.": "met betrekking tot",
    "vd": "van de", "v.d.": "van de", "vh": "van het", "iig": "in ieder geval", "ivm": "in verband met",
    "i.v.m.": "in verband met", "oa": "onder andere", "o.a.": "onder andere", "bijv": "bijvoorbeeld",
    "bv": "bijvoorbeeld", "bijv.": "bijvoorbeeld", "evt": "eventueel", "mn": "met name", "m.n.": "met name",
    "ff": "even", "pls": "alsjeblieft", "plz": "alsjeblieft", "aub": "alsjeblieft", "svp": "alsjeblieft",
    "hnw": "het nieuwe werken", "mt": "managementteam", "mgr": "manager", "ambt": "ambtenaar",
    "org": "organisatie", "dept": "departement", "min": "ministerie", "gem": "gemeente", "prov": "provincie",
    "zsm": "zo snel mogelijk", "idd": "inderdaad", "idk": "ik weet het niet", "imo": "mijns inziens",
    "imho": "mijns inziens", "wmb": "wat mij betreft", "nav": "naar aanleiding van", "n.a.v.": "naar aanleiding van",
    "tov": "ten opzichte van", "t.o.v.": "ten opzichte van", "icm": "in combinatie met", "gwn": "gewoon",
    "nml": "namelijk", "mss": "misschien", "wrs": "waarschijnlijk", "tzt": "te zijner tijd", "thx": "bedankt",
    "tnx": "bedankt", "bvd": "bedankt voor de", "dmv": "door middel van", "d.m.v.": "door middel van",
}
_ABBR = re.compile(r"(?<!\w)(" + "|".join(re.escape(k) for k in sorted(ABBREVIATIONS, key=len, reverse=True))
                   + r")(?!\w)", re.IGNORECASE)


def _fold_char(c: str) -> str:
    base = "".join(x for x in unicodedata.normalize("NFKD", c) if not unicodedata.combining(x))
    return base or c


# Latin letters with accents -> without (é -> e, ĳ -> ij); a translate table is ~10x faster than NFKD per text.
_FOLD = {cp: _fold_char(chr(cp)) for cp in range(0xC0, 0x250) if _fold_char(chr(cp)) != chr(cp)}


def fold(text: str) -> str:
    """Lower-case and drop accents (é -> e), keeping emoji and other symbols."""
    return text.lower().translate(_FOLD)


@lru_cache(maxsize=200_000)
def _known(word: str) -> bool:
    import simplemma

    return len(word) > 1 and simplemma.is_known(word, lang="nl") or word in ("en", "de", "het", "in", "op")


@lru_cache(maxsize=50_000)
def segment(word: str) -> tuple[str, ...]:
    """Split a run-together hashtag into known Dutch words (fewest pieces), or keep it whole."""
    word = word.lower()
    n = len(word)
    if n < 6 or n > 40 or _known(word):
        return (word,)
    best: list[tuple[str, ...] | None] = [None] * (n + 1)
    best[0] = ()
    for end in range(2, n + 1):
        for start in range(max(0, end - 20), end - 1):
            prev = best[start]
            if prev is not None and _known(word[start:end]):
                cand = prev + (word[start:end],)
                if best[end] is None or len(cand) < len(best[end]):
                    best[end] = cand
    return best[n] if best[n] and len(best[n]) > 1 else (word,)


def _hashtag_words(match: re.Match) -> str:
    return _expand_tag(match.group(1))


@lru_cache(maxsize=50_000)
def _expand_tag(tag: str) -> str:
    if tag.lower() in CAMPAIGN_TAGS:
        return " "
    parts = _CAMEL.findall(tag)
    if len(parts) > 1:
        return " " + " ".join(parts) + " "
    return " " + " ".join(segment(tag)) + " "


def normalise(text: str) -> str:
    """The surface form every feature starts from (see the module docstring)."""
    text = _VARIATION.sub("", unicodedata.normalize("NFC", str(text or "")))
    rt = bool(_RT_PREFIX.match(text))
    text = _RT_PREFIX.sub(" ", text)
    text = _URL.sub(" _url_ ", text)
    text = _TIME.sub(" _time_ ", text)
    text = _DATE.sub(" _date_ ", text)
    text = _MENTION.sub(" _user_ ", text)
    text = _HASHTAG.sub(_hashtag_words, text)
    text = _ABBR.sub(lambda m: ABBREVIATIONS[m.group(1).lower()], text)
    text = _EMOJI.sub(lambda m: f" {m.group(0)} ", text)
    text = fold(text)
    text = re.sub(r"\s+", " ", text).strip()
    return ("_rt_ " + text) if rt else text


def tokens(normalised: str) -> list[str]:
    return _TOKEN.findall(normalised)


@lru_cache(maxsize=300_000)
def lemma(token: str) -> str:
    if token.startswith("_") or not token.isalpha() or len(token) < 3:
        return token
    import simplemma

    return fold(simplemma.lemmatize(token, lang="nl"))


def lemmas_and_concepts(normalised: str, with_lemmas: bool = True, with_concepts: bool = True) -> str:
    from classify.lexicon import concepts

    toks = tokens(normalised)
    out = [lemma(t) for t in toks] if with_lemmas else []
    if with_concepts:
        out += concepts(normalised, toks)
    return " ".join(out)


MODES = ("lemmas", "concepts", "lemmas+concepts", "tokens")


class TextNormaliser(BaseEstimator, TransformerMixin):
    """Raw post texts -> normalised texts (the first step of the Pipeline)."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.array([normalise(t) for t in X], dtype=object)


class WordForms(BaseEstimator, TransformerMixin):
    """Normalised texts -> space-joined word features.

    mode ``lemmas``: lemma tokens; ``concepts``: only the concept tokens of classify.lexicon;
    ``lemmas+concepts``: both; ``tokens``: the tokens as written.
    """

    def __init__(self, mode: str = "lemmas+concepts"):
        self.mode = mode

    def fit(self, X, y=None):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        return self

    def transform(self, X):
        if self.mode == "tokens":
            return np.array([" ".join(tokens(t)) for t in X], dtype=object)
        lem, con = "lemmas" in self.mode, "concepts" in self.mode
        return np.array([lemmas_and_concepts(t, lem, con) for t in X], dtype=object)
