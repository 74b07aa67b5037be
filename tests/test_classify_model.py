"""The model's answers follow the codebook's rules, and training is deterministic."""

import numpy as np
import pytest

from classify.data import load_seed
from classify.model import GEEN_IDEE, LABELS, OVERIG, THEMES, CharterClassifier, decide
from classify.train import fit



@pytest.fixture(scope="module")
def starter():
    from classify import store

    return store.load(store.STARTER_DIR)


TRICKY = [
    "",
    "#innoverheid",
    "RT @nieuws: kabinet trekt geld uit voor opleidingen example.nl/x #innoverheid",
    "Schaf de derde handtekening af, vertrouw de vakvrouw, laat teams thuiswerken en deel alles open #innoverheid",
    "🤷‍♀️🤷‍♀️🤷‍♀️",
    "x" * 5000,
    "Let managers trust their teams and stop micromanaging #innoverheid",
]


def _rule_checker(labels):
    assert labels, "every post gets an answer"
    assert len(set(labels)) == len(labels)
    assert all(lab in LABELS for lab in labels)
    if OVERIG in labels or GEEN_IDEE in labels:
        assert len(labels) == 1, labels
    else:
        assert 1 <= len(labels) <= 3


def test_every_answer_of_the_starter_model_follows_the_codebook(starter):
    texts = [ex.text for ex in load_seed()[::7]] + TRICKY
    for d in starter.decide(texts):
        _rule_checker(d.labels)
        assert set(d.scores) == set(LABELS)
        assert all(0.0 <= v <= 1.0 for v in d.scores.values())
        assert 0.0 <= d.confidence <= 1.0


def _clf(gate=0.5, thr=0.5):
    clf = CharterClassifier()
    clf.thresholds_ = {t: thr for t in THEMES}
    clf.gate_threshold_ = gate
    return clf


def _decide(clf, p_idea, cond, primary):
    thr = np.array([clf.thresholds_[t] for t in THEMES])
    return clf._rule(p_idea, np.array(cond, dtype=float), np.array(primary, dtype=float), thr, {})


def test_at_most_three_themes_strongest_first_after_the_primary():
    cond = [0.9, 0.8, 0.95, 0.7, 0.6, 0.1, 0.1, 0.0]
    primary = [0.1, 0.6, 0.1, 0.0, 0.0, 0.0, 0.0, 0.2]
    d = _decide(_clf(), 0.9, cond, primary)
    assert d.labels == ["leiderschap", "ruimte_voor_de_professional", "open_cultuur"]
    assert d.confidence == pytest.approx(0.9 * 0.6)


def test_overig_and_geen_idee_stand_alone():
    cond = [0.9, 0.9, 0.9, 0.0, 0.0, 0.0, 0.0, 0.9]
    assert _decide(_clf(), 0.2, cond, [0.5] + [0.0] * 7).labels == [GEEN_IDEE]
    d = _decide(_clf(), 0.9, cond, [0.1] * 7 + [0.9])
    assert d.labels == [OVERIG]


def test_a_theme_below_its_threshold_is_not_added_as_secondary():
    d = _decide(_clf(thr=0.7), 0.9, [0.65, 0.6, 0, 0, 0, 0, 0, 0], [0.7, 0.2, 0, 0, 0, 0, 0, 0.1])
    assert d.labels == ["open_cultuur"]


def test_training_is_deterministic():
    examples = load_seed()[::6]
    texts = [ex.text for ex in load_seed()[1::25]]
    a = [d.scores for d in decide(fit(examples), texts)]
    b = [d.scores for d in decide(fit(examples), texts)]
    assert a == b


def test_cross_validation_in_parallel_processes_gives_the_same_figures():
    """`train --jobs` and the starter fit folds in worker processes: the figures must not change."""
    from classify.train import cross_validate

    examples = load_seed()[::12]
    one = cross_validate(examples, folds=3).to_dict()
    two = cross_validate(examples, folds=3, n_jobs=2).to_dict()
    assert one == two and one["n"] == len(examples)
