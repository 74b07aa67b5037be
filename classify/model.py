"""The classifier: one scikit-learn Pipeline from raw post text to the codebook's labels.

    text -> normalise -> [lemmas + concept cues (classify.lexicon) -> word 1-2-gram TF-IDF]
                       + [character 2-5-gram TF-IDF within words]   (survives typos and compounds)
         -> CharterClassifier:
              gate      calibrated linear SVM: is this an idea at all?
              themes    one calibrated linear SVM per theme (one-vs-rest, trained on ideas only)
              overig    calibrated linear SVM: an idea that no theme claims
              primary   which label leads, over the 7 themes + overig: the mean of a calibrated
                        linear SVM and a multinomial naive Bayes (the Bayes half generalises better
                        to writers the model never read: +0.8 points primary accuracy in
                        leave-one-writer-out cross-validation)

`CharterClassifier._rule` is the one place that applies the codebook's rules: `geen_idee` when
P(idea) is below the gate's cut; otherwise the leading label is the best of the averaged
primary-model and theme/overig probabilities; a leading theme is joined by the other themes
whose probability passes their own cut, at most three themes in all, strongest first; `overig`
and `geen_idee` stand alone. All cuts are tuned by cross-validation inside `fit`, on the
training data only. The confidence of an answer is P(idea) times the leading label's averaged
probability (for `geen_idee`: 1 - P(idea)); below `classifier.min_confidence` the caller marks
the post for review instead of trusting the guess. Scores are per label: P(geen_idee) and
P(idea) x P(label | idea).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from classify.text import TextNormaliser, WordForms
from storage.labels import GEEN_IDEE, LABELS, OVERIG, THEMES  # the codebook's labels, defined once

IDEA_LABELS = THEMES + (OVERIG,)
MAX_THEMES = 3
_NT = len(THEMES)
_O, _G = LABELS.index(OVERIG), LABELS.index(GEEN_IDEE)


@dataclass
class Decision:
    labels: list[str]
    confidence: float
    scores: dict[str, float]


def _calibrated(C: float, folds: int) -> CalibratedClassifierCV:
    """A linear SVM with Platt scaling fitted on its out-of-fold scores; one SVM kept (small, fast)."""
    svm = LinearSVC(C=C, class_weight="balanced", max_iter=5000, random_state=0)
    return CalibratedClassifierCV(svm, method="sigmoid", cv=folds, ensemble=False)


def best_threshold(y: np.ndarray, p: np.ndarray, lo: float = 0.15, hi: float = 0.85) -> float:
    """The probability cut that maximises F1 on out-of-fold predictions (ties: the one nearest 0.5)."""
    y = np.asarray(y, dtype=bool)
    best, best_f1 = 0.5, -1.0
    for t in np.round(np.arange(lo, hi + 1e-9, 0.025), 3):
        pred = p >= t
        denom = pred.sum() + y.sum()
        f1 = 2 * float(np.sum(pred & y)) / denom if denom else 0.0
        if f1 > best_f1 + 1e-9 or (abs(f1 - best_f1) <= 1e-9 and abs(t - 0.5) < abs(best - 0.5)):
            best, best_f1 = float(t), f1
    return best


class CharterClassifier(BaseEstimator, ClassifierMixin):
    """Gate + one-vs-rest themes + overig + primary model over a feature matrix.

    `fit(X, Y)` takes a feature matrix and label lists (primary first). `predict_proba` gives one
    column per label in `LABELS` order: P(geen_idee) = 1 - P(idea); a theme's column is
    P(idea) * P(theme | idea); overig's is P(idea) * P(overig | idea).
    """

    def __init__(self, C_gate: float = 0.5, C_theme: float = 0.5, C_primary: float = 0.5,
                 primary_weight: float = 0.5, primary_model: str = "svm", nb_alpha: float = 0.1,
                 calibration_folds: int = 5,
                 threshold_folds: int = 5, tune_thresholds: bool = True):
        self.C_gate = C_gate
        self.C_theme = C_theme
        self.C_primary = C_primary
        self.primary_weight = primary_weight
        self.primary_model = primary_model
        self.nb_alpha = nb_alpha
        self.calibration_folds = calibration_folds
        self.threshold_folds = threshold_folds
        self.tune_thresholds = tune_thresholds

    # ------------------------------------------------------------------ training
    @staticmethod
    def targets(Y: Sequence[Sequence[str]]):
        idea = np.array([GEEN_IDEE not in labels for labels in Y], dtype=bool)
        themes = np.array([[t in labels for t in THEMES] for labels in Y], dtype=bool).reshape(len(Y), _NT)
        overig = np.array([OVERIG in labels for labels in Y], dtype=bool)
        primary = np.array([IDEA_LABELS.index(y[0]) if y and y[0] in IDEA_LABELS else -1 for y in Y])
        return idea, themes, overig, primary

    def _fit_gate(self, X, idea):
        return _calibrated(self.C_gate, self.calibration_folds).fit(X, idea)

    def _fit_ideas(self, Xi, themes, overig, primary):
        theme_models = [_calibrated(self.C_theme, self.calibration_folds).fit(Xi, themes[:, j]) for j in range(_NT)]
        overig_model = _calibrated(self.C_theme, self.calibration_folds).fit(Xi, overig)
        if self.primary_model in ("svm", "svm+nb"):
            primary_model = _calibrated(self.C_primary, self.calibration_folds).fit(Xi, primary)
        else:
            primary_model = LogisticRegression(C=self.C_primary, max_iter=3000, class_weight="balanced").fit(
                Xi, primary)
        if self.primary_model == "svm+nb":
            primary_model = [primary_model, MultinomialNB(alpha=self.nb_alpha).fit(Xi, primary)]
        return theme_models, overig_model, primary_model

    def fit(self, X, Y):
        Y = [list(y) for y in Y]
        idea, themes, overig, primary = self.targets(Y)
        if idea.all() or not idea.any():
            raise ValueError("training needs both ideas and geen_idee posts")
        missing = [t for j, t in enumerate(THEMES) if themes[idea, j].sum() < self.calibration_folds]
        if missing:
            raise ValueError(f"too few training posts for {', '.join(missing)} (need {self.calibration_folds} each)")
        rows = np.flatnonzero(idea)
        self.thresholds_ = {t: 0.5 for t in THEMES}
        self.gate_threshold_ = 0.5
        if self.tune_thresholds:
            self._tune(X, idea, themes, rows)
        self.gate_ = self._fit_gate(X, idea)
        self.theme_models_, self.overig_model_, self.primary_model_ = self._fit_ideas(
            X[rows], themes[rows], overig[rows], primary[rows])
        self.classes_ = np.array(LABELS)
        return self

    def _tune(self, X, idea, themes, rows) -> None:
        """Per-theme cut points (and the gate's) from out-of-fold probabilities; folds are seeded."""
        folds = StratifiedKFold(n_splits=self.threshold_folds, shuffle=True, random_state=0)
        p_idea = np.zeros(X.shape[0])
        for train, test in folds.split(X, idea):
            p_idea[test] = self._fit_gate(X[train], idea[train]).predict_proba(X[test])[:, 1]
        # The gate decides geen_idee; its cut maximises F1 of geen_idee, kept near the calibrated 0.5.
        self.gate_threshold_ = round(1.0 - best_threshold(~idea, 1.0 - p_idea, lo=0.35, hi=0.65), 6)
        Xi, Ti = X[rows], themes[rows]
        oof = np.zeros(Ti.shape)
        for train, test in folds.split(Xi, Ti.argmax(axis=1) * 2 + Ti.any(axis=1)):
            for j in range(_NT):
                model = _calibrated(self.C_theme, self.calibration_folds).fit(Xi[train], Ti[train, j])
                oof[test, j] = model.predict_proba(Xi[test])[:, 1]
        self.thresholds_ = {t: best_threshold(Ti[:, j], oof[:, j]) for j, t in enumerate(THEMES)}

    # ------------------------------------------------------------------ prediction
    def _parts(self, X):
        p_idea = self.gate_.predict_proba(X)[:, 1]
        cond = np.column_stack([m.predict_proba(X)[:, 1] for m in self.theme_models_]
                               + [self.overig_model_.predict_proba(X)[:, 1]])
        models = self.primary_model_ if isinstance(self.primary_model_, list) else [self.primary_model_]
        prim = np.zeros_like(cond)
        for model in models:
            prim[:, model.classes_] += model.predict_proba(X) / len(models)
        w = self.primary_weight
        return p_idea, cond, w * prim + (1.0 - w) * cond

    def predict_proba(self, X) -> np.ndarray:
        p_idea, cond, _ = self._parts(X)
        return np.column_stack([p_idea[:, None] * cond, 1.0 - p_idea])

    def decide_matrix(self, X) -> list[Decision]:
        p_idea, cond, primary = self._parts(X)
        thr = np.array([self.thresholds_[t] for t in THEMES])
        out = []
        for pi, c, pr in zip(p_idea, cond, primary, strict=True):
            scores = {lab: float(pi * c[i]) for i, lab in enumerate(IDEA_LABELS)}
            scores[GEEN_IDEE] = float(1.0 - pi)
            out.append(self._rule(float(pi), c, pr, thr, scores))
        return out

    def _rule(self, p_idea: float, cond: np.ndarray, primary: np.ndarray, thr: np.ndarray,
              scores: dict[str, float]) -> Decision:
        if p_idea < self.gate_threshold_:
            return Decision([GEEN_IDEE], 1.0 - p_idea, scores)
        k = int(np.argmax(primary))
        if k == _NT:  # overig leads: it stands alone
            return Decision([OVERIG], p_idea * float(primary[k]), scores)
        order = np.argsort(-cond[:_NT], kind="stable")
        rest = [int(j) for j in order if j != k and cond[j] >= thr[j]][: MAX_THEMES - 1]
        return Decision([THEMES[k]] + [THEMES[j] for j in rest], p_idea * float(primary[k]), scores)

    def predict(self, X) -> list[list[str]]:
        return [d.labels for d in self.decide_matrix(X)]


class TfidfFeatures(TfidfVectorizer):
    """A TfidfVectorizer that saves its vocabulary as one array of terms instead of a dict.

    skops writes a dict entry by entry into its JSON schema (tens of MB for a character
    n-gram vocabulary); an array of strings is one compact .npy. Behaviour is unchanged.
    """

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: the object itself stays as it is
        vocab = state.pop("vocabulary_", None)
        state.pop("stop_words_", None)  # only kept for inspection; prediction never uses it
        state.pop("_word_features", None)  # a cache, rebuilt on use
        if vocab is not None:
            terms = np.empty(len(vocab), dtype=object)
            for term, index in vocab.items():
                terms[index] = term
            state["_terms"] = terms.astype(str)
        return state

    def __setstate__(self, state):
        state = dict(state)
        terms = state.pop("_terms", None)
        if terms is not None:
            state["vocabulary_"] = {str(t): i for i, t in enumerate(terms.tolist())}
        super().__setstate__(state)

    def _fast_path(self) -> bool:
        return (self.analyzer == "char_wb" and not self.lowercase and not self.strip_accents
                and self.preprocessor is None and not self.binary and hasattr(self, "vocabulary_"))

    def transform(self, raw_documents):
        """For char_wb: exactly scikit-learn's features, with each distinct word's n-grams looked up once.

        char_wb n-grams never cross a word boundary, so a text's n-gram counts are the sum of its
        words' counts; words repeat across posts, so caching each word's feature indices makes
        prediction several times faster with the same matrix.
        """
        if not self._fast_path():
            return super().transform(raw_documents)
        vocab = self.vocabulary_
        cache = self.__dict__.setdefault("_word_features", {})
        one_word, white = self._char_wb_ngrams, self._white_spaces
        indices: list[int] = []
        indptr = [0]
        for doc in raw_documents:
            for word in white.sub(" ", doc).split():
                found = cache.get(word)
                if found is None:
                    found = [vocab[g] for g in one_word(word) if g in vocab]
                    if len(cache) < _WORD_CACHE_MAX:
                        cache[word] = found
                indices.extend(found)
            indptr.append(len(indices))
        counts = sp.csr_matrix((np.ones(len(indices), dtype=self.dtype), np.asarray(indices, dtype=np.int32),
                                np.asarray(indptr, dtype=np.int64)), shape=(len(indptr) - 1, len(vocab)))
        counts.sum_duplicates()
        counts.sort_indices()
        return self._tfidf.transform(counts, copy=False)


_WORD_CACHE_MAX = 100_000


FEATURE_KEYS = ("word_ngrams", "char_ngrams", "min_df", "max_char_features", "word_mode")


def build_features(word_ngrams=(1, 2), char_ngrams=(2, 5), min_df: int = 2,
                   max_char_features: int | None = 150_000, word_mode: str = "lemmas+concepts") -> Pipeline:
    words = Pipeline([
        ("forms", WordForms(mode=word_mode)),
        ("tfidf", TfidfFeatures(token_pattern=r"\S+", lowercase=False, ngram_range=tuple(word_ngrams),
                                  min_df=min_df, sublinear_tf=True, dtype=np.float32)),
    ])
    chars = TfidfFeatures(analyzer="char_wb", lowercase=False, ngram_range=tuple(char_ngrams), min_df=min_df,
                            sublinear_tf=True, max_features=max_char_features, dtype=np.float32)
    return Pipeline([("normalise", TextNormaliser()), ("union", FeatureUnion([("words", words), ("chars", chars)]))])


def build_pipeline(**params) -> Pipeline:
    """The untrained Pipeline; feature parameters go to `build_features`, the rest to the classifier."""
    feats = build_features(**{k: v for k, v in params.items() if k in FEATURE_KEYS})
    clf = CharterClassifier(**{k: v for k, v in params.items() if k not in FEATURE_KEYS})
    return Pipeline([("features", feats), ("classify", clf)])


def decide(pipe: Pipeline, texts: Sequence[str]) -> list[Decision]:
    """Labels, confidence and per-label scores for each text, in order."""
    if not texts:
        return []
    X = pipe.named_steps["features"].transform(list(texts))
    return pipe.named_steps["classify"].decide_matrix(X)
