"""Models are saved with skops plus metadata; a changed or foreign file is refused, never executed."""

import json
import shutil
import zipfile

import pytest

from classify import store
from classify.data import load_seed
from classify.train import train
from innoverheid.config import Config
from innoverheid.errors import ModelFileError


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    examples = load_seed()[::5]
    result = train(examples, cv_folds=0, note="test")
    d = tmp_path_factory.mktemp("model")
    store.save(result.pipeline, result.meta, d)
    return d, result


def test_saved_model_loads_and_predicts_the_same(small_model):
    d, result = small_model
    loaded = store.load(d)
    texts = [ex.text for ex in load_seed()[1::40]]
    from classify.model import decide

    assert [x.scores for x in loaded.decide(texts)] == [x.scores for x in decide(result.pipeline, texts)]
    meta = json.loads((d / "model.json").read_text())
    for key in ("version", "sklearn_version", "corpus_hash", "labels", "thresholds", "metrics", "model_sha256"):
        assert key in meta
    assert loaded.version == meta["version"]


def test_a_changed_model_file_is_refused(small_model, tmp_path):
    d, _ = small_model
    copy = tmp_path / "m"
    shutil.copytree(d, copy)
    data = bytearray((copy / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.skops").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        store.load(copy)


def test_a_foreign_file_with_a_matching_checksum_is_refused_and_never_run(tmp_path, monkeypatch):
    import os

    import skops.io as sio

    evil = tmp_path / "evil"
    evil.mkdir()
    sio.dump({"payload": os.system}, evil / "model.skops")  # the real function, stored by name
    meta = {"format": store.FORMAT, "version": "evil", "model_sha256": store._sha256(evil / "model.skops")}
    (evil / "model.json").write_text(json.dumps(meta))
    calls = []
    monkeypatch.setattr(os, "system", lambda cmd: calls.append(cmd))  # had loading called it, we would see it
    with pytest.raises(ModelFileError, match="does not trust.*system"):
        store.load(evil)
    assert calls == []


def test_a_model_without_its_metadata_is_refused(small_model, tmp_path):
    d, _ = small_model
    shutil.copy(d / "model.skops", tmp_path / "model.skops")
    with pytest.raises(ModelFileError, match="model.json"):
        store.load(tmp_path)


def test_a_missing_model_names_the_fix(tmp_path):
    with pytest.raises(ModelFileError, match="innoverheid train"):
        store.load(tmp_path / "nothing")


def test_the_starter_model_ships_in_the_package_and_is_the_default():
    assert store.model_location(Config()) == store.STARTER_DIR
    assert (store.STARTER_DIR / "model.skops").is_file() and (store.STARTER_DIR / "model.json").is_file()
    assert store.STARTER_DIR.parent.parent.name == "classify"  # inside the package: package-data ships it
    assert zipfile.is_zipfile(store.STARTER_DIR / "model.skops")
    meta = store.read_meta(store.STARTER_DIR)
    assert meta["n_examples"] >= 2000


def test_a_configured_model_path_resolves_next_to_the_config(tmp_path):
    cfg = Config.model_validate({"classifier": {"model": "models/current"}, "base_dir": str(tmp_path)})
    assert store.model_location(cfg) == tmp_path / "models" / "current"
