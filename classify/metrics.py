"""The figures `train` and `evaluate` print: per label, per theme set, the gate, the primary theme.

Definitions (the README repeats them for readers of the digest):

- per label: precision, recall and F1 of that label being in a post's label set;
- theme macro-F1: the mean F1 of the seven charter themes (each theme counts the same);
- theme micro-F1: F1 over all (post, theme) decisions of the seven themes together;
- idea-gate F1: F1 of "this post is an idea" (anything but `geen_idee`);
- `geen_idee` F1: F1 of recognising a not-an-idea;
- primary-theme accuracy: share of posts whose first predicted label is the first true label
  (over all posts, so `geen_idee` and `overig` count as primary labels too); the figure for
  posts whose true primary label is one of the seven themes is printed beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from classify.model import GEEN_IDEE, LABELS, THEMES


@dataclass
class LabelScore:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Report:
    n: int
    per_label: dict[str, LabelScore] = field(default_factory=dict)
    theme_macro_f1: float = 0.0
    theme_micro_f1: float = 0.0
    idea_gate_f1: float = 0.0
    geen_idee_f1: float = 0.0
    primary_accuracy: float = 0.0
    primary_theme_accuracy_themed: float = 0.0
    exact_match: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["per_label"] = {k: asdict(v) for k, v in self.per_label.items()}
        return d


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def score(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Report:
    """Compare predicted label lists (primary first) with the true ones."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} true label sets but {len(pred)} predictions")
    rep = Report(n=len(gold))
    counts = {lab: [0, 0, 0] for lab in LABELS}  # tp, fp, fn
    for g, p in zip(gold, pred, strict=True):
        gs, ps = set(g), set(p)
        for lab in LABELS:
            if lab in ps and lab in gs:
                counts[lab][0] += 1
            elif lab in ps:
                counts[lab][1] += 1
            elif lab in gs:
                counts[lab][2] += 1
    for lab, (tp, fp, fn) in counts.items():
        rep.per_label[lab] = LabelScore(*_prf(tp, fp, fn), support=tp + fn)
    rep.theme_macro_f1 = sum(rep.per_label[t].f1 for t in THEMES) / len(THEMES)
    rep.theme_micro_f1 = _prf(*(sum(counts[t][i] for t in THEMES) for i in range(3)))[2]
    rep.geen_idee_f1 = rep.per_label[GEEN_IDEE].f1
    tp = sum(1 for g, p in zip(gold, pred, strict=True) if GEEN_IDEE not in g and GEEN_IDEE not in p)
    fp = sum(1 for g, p in zip(gold, pred, strict=True) if GEEN_IDEE in g and GEEN_IDEE not in p)
    fn = sum(1 for g, p in zip(gold, pred, strict=True) if GEEN_IDEE not in g and GEEN_IDEE in p)
    rep.idea_gate_f1 = _prf(tp, fp, fn)[2]
    firsts = [(g[0] if g else None, p[0] if p else None) for g, p in zip(gold, pred, strict=True)]
    rep.primary_accuracy = sum(a == b for a, b in firsts) / len(firsts) if firsts else 0.0
    themed = [(a, b) for a, b in firsts if a in THEMES]
    rep.primary_theme_accuracy_themed = sum(a == b for a, b in themed) / len(themed) if themed else 0.0
    rep.exact_match = sum(set(g) == set(p) for g, p in zip(gold, pred, strict=True)) / len(gold) if gold else 0.0
    return rep


TARGETS = {"theme_macro_f1": 0.80, "geen_idee_f1": 0.85, "primary_accuracy": 0.85}


def render(rep: Report, title: str = "") -> str:
    """The full figures table, as `train` and `evaluate` print it."""
    lines = [title] if title else []
    lines.append(f"{'label':<29} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}")
    for lab in LABELS:
        s = rep.per_label[lab]
        lines.append(f"{lab:<29} {s.precision:>9.3f} {s.recall:>7.3f} {s.f1:>6.3f} {s.support:>8d}")
    lines.append("")
    rows = [
        ("theme macro-F1", rep.theme_macro_f1, TARGETS["theme_macro_f1"]),
        ("theme micro-F1", rep.theme_micro_f1, None),
        ("idea-gate F1", rep.idea_gate_f1, None),
        ("geen_idee F1", rep.geen_idee_f1, TARGETS["geen_idee_f1"]),
        ("primary-theme accuracy", rep.primary_accuracy, TARGETS["primary_accuracy"]),
        ("  (posts with a theme)", rep.primary_theme_accuracy_themed, None),
        ("exact label-set match", rep.exact_match, None),
    ]
    for name, value, target in rows:
        lines.append(f"{name:<29} {value:>6.3f}" + (f"   (target >= {target:.2f})" if target is not None else ""))
    lines.append(f"posts: {rep.n}")
    return "\n".join(lines)
