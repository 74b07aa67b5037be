"""The seed corpus and the evaluation split: what issue 4 promises about them."""

import re
from collections import Counter


from classify.data import EVAL_FILE, LineProblems, load_seed, read_labelled
from classify.overlap import find_overlaps, near_duplicates
from conftest import SHARED

CODEBOOK = SHARED / "codebook.md"  # the suite needs ../shared anyway (recorded fixtures)


def test_seed_corpus_is_large_varied_and_follows_the_codebook():
    seed = load_seed()  # raises on any line that breaks the codebook's label rules
    n = len(seed)
    assert n >= 2000
    first = Counter(ex.labels[0] for ex in seed)
    assert first["geen_idee"] / n >= 0.20 and first["overig"] / n >= 0.10
    assert sum(len(ex.labels) > 1 for ex in seed) / n >= 0.25
    assert len({ex.id for ex in seed}) == n
    assert sum(ex.text.startswith("RT @") for ex in seed) >= 20
    assert sum(bool(re.search(r"[\U0001F300-\U0001FAFF]", ex.text)) for ex in seed) >= 50


def test_evaluation_split_is_separate_and_valid():
    problems = LineProblems()
    evals = read_labelled(EVAL_FILE, problems)
    assert problems.problems == [] and len(evals) >= 400


def test_no_near_duplicate_straddles_seed_and_evaluation():
    overlaps = find_overlaps()
    assert overlaps == [], "run: python -m classify.overlap --remove\n" + "\n".join(
        f"{o.seed_id}: {o.seed_text}" for o in overlaps)


def test_the_codebooks_own_examples_are_not_in_the_data():
    examples = re.findall(r'^\d\. "(.+?)" →', CODEBOOK.read_text(encoding="utf-8"), re.M)
    assert len(examples) >= 20
    problems = LineProblems()
    texts = [ex.text for ex in load_seed()] + [ex.text for ex in read_labelled(EVAL_FILE, problems)]
    assert near_duplicates(examples, texts, threshold=0.75) == []
