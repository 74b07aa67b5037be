"""The figures train and evaluate print."""

import pytest

from classify.metrics import render, score


def test_perfect_predictions_score_one():
    gold = [["leiderschap", "open_cultuur"], ["geen_idee"], ["overig"]]
    rep = score(gold, gold)
    assert rep.theme_macro_f1 == pytest.approx(2 / 7)  # five themes never occur: F1 0
    assert rep.geen_idee_f1 == 1.0 and rep.primary_accuracy == 1.0 and rep.idea_gate_f1 == 1.0


def test_known_mistakes_give_known_figures():
    gold = [["leiderschap"], ["leiderschap", "netwerken"], ["geen_idee"], ["overig"]]
    pred = [["leiderschap"], ["netwerken", "leiderschap"], ["overig"], ["geen_idee"]]
    rep = score(gold, pred)
    assert rep.per_label["leiderschap"].f1 == 1.0
    assert rep.per_label["geen_idee"].precision == 0.0 and rep.per_label["geen_idee"].recall == 0.0
    assert rep.primary_accuracy == 0.25  # only the first post has the right first label
    assert rep.primary_theme_accuracy_themed == 0.5
    assert rep.idea_gate_f1 == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))


def test_table_names_every_label_and_the_three_targets():
    text = render(score([["leiderschap"], ["geen_idee"]], [["leiderschap"], ["overig"]]))
    for name in ("open_cultuur", "leiderschap", "ruimte_voor_de_professional", "sturen_op_talent", "netwerken",
                 "flexibilisering", "slimmer_organiseren", "overig", "geen_idee", "theme macro-F1",
                 "theme micro-F1", "idea-gate F1", "geen_idee F1", "primary-theme accuracy"):
        assert name in text


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        score([["overig"]], [])
