"""The shipped starter model is exactly what training on the seed corpus gives."""

import numpy as np
import pytest

from classify import store
from classify.data import corpus_hash, load_seed
from classify.model import decide
from classify.train import DEFAULT_PARAMS, fit, version_id

EXTRA = ["Schaf de parafenlijn af #innoverheid", "RT @x: webinar morgen, aanmelden example.org", "🤷", ""]


@pytest.mark.slow
def test_training_on_the_seed_corpus_reproduces_the_starter_model():
    meta = store.read_meta(store.STARTER_DIR)
    examples = load_seed()
    assert corpus_hash(examples) == meta["corpus_hash"], "seed corpus changed: run python -m classify.starter"
    assert meta["version"] == version_id(meta["corpus_hash"], DEFAULT_PARAMS)
    shipped = store.load(store.STARTER_DIR)
    retrained = fit(examples, DEFAULT_PARAMS)
    clf = retrained.named_steps["classify"]
    assert {**clf.thresholds_, "gate": clf.gate_threshold_} == meta["thresholds"]
    texts = [ex.text for ex in examples[::4]] + EXTRA
    ours, theirs = decide(retrained, texts), shipped.decide(texts)
    assert [d.labels for d in ours] == [d.labels for d in theirs]
    a = np.array([[d.scores[k] for k in sorted(d.scores)] for d in ours])
    b = np.array([[d.scores[k] for k in sorted(d.scores)] for d in theirs])
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    np.testing.assert_allclose([d.confidence for d in ours], [d.confidence for d in theirs], rtol=0, atol=1e-9)
