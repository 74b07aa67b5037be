"""Saving and loading models: skops (never pickle) plus a metadata JSON sidecar.

A model directory holds ``model.skops`` and ``model.json``. The sidecar records the version id,
the scikit-learn version, the corpus hash, the labels, the thresholds, the figures and the
SHA-256 of the skops file. Loading checks, before anything is built from the file:

1. the sidecar is readable and the skops file's SHA-256 matches it (a changed file is refused);
2. every type the file would create is on `TRUSTED_TYPES`, an explicit list of the classes
   this pipeline is made of (a foreign or tampered file naming anything else is refused).

Only then does skops build the objects, trusting exactly that list. Every refusal is a
`ModelFileError` saying what is wrong and what to do; nothing in a refused file is executed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sklearn

from classify.model import LABELS, decide
from innoverheid.errors import ModelFileError

log = logging.getLogger(__name__)

MODEL_FILE = "model.skops"
META_FILE = "model.json"
FORMAT = "innoverheid-classifier/1"
STARTER_DIR = Path(__file__).resolve().parent / "models" / "starter"

# Every non-builtin type the saved Pipeline contains. Anything else in a file is refused.
TRUSTED_TYPES = [
    "classify.model.CharterClassifier",
    "classify.text.TextNormaliser",
    "classify.text.WordForms",
    "classify.model.TfidfFeatures",
    "sklearn.pipeline.Pipeline",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.naive_bayes.MultinomialNB",
    "sklearn.model_selection._split.StratifiedKFold",
    "numpy.float32",
    "numpy.float64",
    "numpy.int64",
    "numpy.int32",
    "numpy.bool_",
    "numpy.ndarray",
    "numpy.dtype",
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.set",
    "builtins.str",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.slice",
    "scipy.sparse._csr.csr_matrix",
]


@dataclass
class LoadedModel:
    pipeline: Any
    meta: dict
    path: Path

    @property
    def version(self) -> str:
        return self.meta["version"]

    def decide(self, texts: list[str]):
        return decide(self.pipeline, texts)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save(pipeline: Any, meta: dict, directory: str | Path) -> Path:
    """Write model.skops and model.json into directory (created if needed); returns the directory."""
    import skops.io as sio

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _atomic_write(d / MODEL_FILE, sio.dumps(pipeline, compression=zipfile.ZIP_DEFLATED, compresslevel=9))
    meta = {**meta, "format": FORMAT, "sklearn_version": sklearn.__version__, "labels": list(LABELS),
            "model_sha256": _sha256(d / MODEL_FILE)}
    _atomic_write(d / META_FILE, (json.dumps(meta, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode())
    return d


def _paths(location: str | Path) -> tuple[Path, Path]:
    p = Path(location)
    if p.is_dir() or p.suffix != ".skops":
        return p / MODEL_FILE, p / META_FILE
    return p, p.with_name(META_FILE)


def read_meta(location: str | Path) -> dict:
    model_path, meta_path = _paths(location)
    if not model_path.is_file():
        raise ModelFileError(f"no model at {model_path}: train one with 'innoverheid train --out DIR', "
                             "or remove classifier.model from config.yaml to use the bundled starter model")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{meta_path} is missing: a model is only loaded with its metadata file; "
                             "copy model.json along with model.skops, or train the model again") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{meta_path} cannot be read ({exc.__class__.__name__}); train the model again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not meta.get("version"):
        raise ModelFileError(f"{meta_path} is not an innoverheid model description; train the model again")
    return meta


def load(location: str | Path) -> LoadedModel:
    """Load a model directory (or its model.skops), refusing changed files and untrusted types."""
    import skops.io as sio

    model_path, _ = _paths(location)
    meta = read_meta(location)
    if _sha256(model_path) != meta.get("model_sha256"):
        raise ModelFileError(f"{model_path} does not match the checksum in its model.json: the file was changed "
                             "after training; refusing to load it. Train the model again or restore the original")
    try:
        found = sio.get_untrusted_types(file=model_path)
    except Exception as exc:
        raise ModelFileError(f"{model_path} is not a readable skops model ({exc.__class__.__name__})") from None
    foreign = sorted(set(found) - set(TRUSTED_TYPES))
    if foreign:
        raise ModelFileError(f"{model_path} contains types this program does not trust ({', '.join(foreign[:5])}); "
                             "refusing to load it. Only load models trained by innoverheid")
    try:
        pipeline = sio.load(model_path, trusted=[t for t in TRUSTED_TYPES if t in set(found)])
    except Exception as exc:
        raise ModelFileError(f"{model_path} could not be loaded ({exc.__class__.__name__}: {exc}); "
                             "train the model again") from None
    if meta.get("sklearn_version") != sklearn.__version__:
        log.warning("model %s was trained with scikit-learn %s, this is %s; retrain if predictions look odd",
                    meta["version"], meta.get("sklearn_version"), sklearn.__version__)
    return LoadedModel(pipeline=pipeline, meta=meta, path=model_path.parent)


def model_location(cfg) -> Path:
    """Where the configured model lives: classifier.model (relative to config.yaml), else the starter."""
    if cfg.classifier.model is None:
        return STARTER_DIR
    return cfg.resolve(cfg.classifier.model)


def load_configured(cfg) -> LoadedModel:
    return load(model_location(cfg))
