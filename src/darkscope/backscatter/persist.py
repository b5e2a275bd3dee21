"""Saving and loading detector models: a directory with the estimator (joblib) and a JSON
manifest (darkscope, scikit-learn and feature-definition versions) that is checked *before*
anything is unpickled, so a mismatch is a clear error rather than a wrong answer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import sklearn

from darkscope import __version__
from darkscope.backscatter.features import FEATURE_VERSION, FeatureDefinition
from darkscope.backscatter.model import BackscatterModel
from darkscope.errors import DarkscopeError
from darkscope.io import atomic_path

FORMAT = "darkscope-backscatter-model"
FORMAT_VERSION = 1
MANIFEST = "model.json"
ESTIMATOR = "model.joblib"


@dataclass
class SavedModel:
    model: BackscatterModel
    definition: FeatureDefinition
    info: dict[str, Any] = field(default_factory=dict)


def _release(version: str) -> str:
    return ".".join(version.split(".")[:2])


def save(saved: SavedModel, path: str | Path, overwrite: bool = False) -> Path:
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "darkscope": __version__,
        "scikit_learn": sklearn.__version__, "feature_definition": saved.definition.key(),
        "features": list(saved.definition.names), "info": saved.info,
    }
    with atomic_path(path, overwrite) as tmp:
        tmp.mkdir()
        joblib.dump(saved.model, tmp / ESTIMATOR, compress=3)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return Path(path)


def load(path: str | Path, expect: FeatureDefinition | None = None) -> SavedModel:
    """Load a model directory; refuse other formats, releases or feature definitions."""
    root = Path(path)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise DarkscopeError(f"{root}: not a backscatter model directory (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise DarkscopeError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise DarkscopeError(f"{root}: model format {manifest.get('format')!r} version "
                             f"{manifest.get('format_version')!r}, expected {FORMAT!r} "
                             f"version {FORMAT_VERSION}")
    for key, mine in (("darkscope", __version__), ("scikit_learn", sklearn.__version__)):
        theirs = str(manifest.get(key))
        if _release(theirs) != _release(mine):
            raise DarkscopeError(f"{root}: model saved by {key.replace('_', '-')} {theirs}, "
                                 f"this is {mine}; retrain it (darkscope backscatter train)")
    try:
        definition = FeatureDefinition.from_key(manifest["feature_definition"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DarkscopeError(f"{root}: feature definition unreadable ({exc})") from None
    if definition.version != FEATURE_VERSION:
        raise DarkscopeError(f"{root}: model uses feature definition v{definition.version}, "
                             f"this darkscope computes v{FEATURE_VERSION}; retrain it")
    if expect is not None and expect != definition:
        raise DarkscopeError(f"{root}: model was trained on {definition.describe()}, but "
                             f"{expect.describe()} were asked for")
    model = joblib.load(root / ESTIMATOR)
    if not isinstance(model, BackscatterModel):
        raise DarkscopeError(f"{root}: {ESTIMATOR} holds no backscatter model")
    return SavedModel(model, definition, manifest.get("info", {}))
