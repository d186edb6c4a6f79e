"""The gradient-boosted trees that score accounts: train, save, load, score a batch.

A model is LightGBM's own text format (trees as numbers and split conditions, readable by a reviewer), never a
pickle, so loading a model file runs no code. The file names the features it was trained on; a file whose names
differ from FEATURES is refused rather than fed the wrong columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import lightgbm
import numpy as np

from cove.safety.features import FEATURES

# The model shipped with Cove (``cove safety train`` writes it), loaded when no other path is configured.
SHIPPED = "detector.txt"

# Small, regularised trees: the simulator's populations overlap by design, and bigger leaves fitted on few
# abusers gave legitimate look-alikes scores of 0.9999 (on 30,000 simulated accounts, recall at a false-positive
# rate of 1e-3 rose from 0.51 to 0.58 with these; hijacked accounts from 0.12 to 0.82).
PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 200,
    "lambda_l2": 10.0,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "verbosity": -1,
    # One thread: the relay scores a small batch at a time, where threads cost more than they save, and a
    # training run shares the machine.
    "num_threads": 1,
}


class ModelError(Exception):
    """A model file that cannot be used: unreadable, or trained on other features."""


@dataclass(frozen=True)
class Model:
    booster: lightgbm.Booster

    def score(self, rows: np.ndarray) -> np.ndarray:
        """The chance of abuse, in [0, 1], for each row of features (one row per account, FEATURES order)."""
        if len(rows) == 0:
            return np.zeros(0)
        return self.booster.predict(np.asarray(rows, dtype=np.float64), num_threads=1)

    def strongest(self, rows: np.ndarray) -> list[str]:
        """For each row, the feature that pushed its score up the most (LightGBM's SHAP contributions)."""
        contributions = self.booster.predict(np.asarray(rows, dtype=np.float64), pred_contrib=True, num_threads=1)
        return [FEATURES[i] for i in np.argmax(contributions[:, : len(FEATURES)], axis=1)]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.text)

    @property
    def text(self) -> str:
        return self.booster.model_to_string()


def train(
    rows: np.ndarray, labels: np.ndarray, rounds: int = 200, seed: int = 0, weights: np.ndarray | None = None
) -> Model:
    """Fit the trees to rows of FEATURES labelled 1 (abusive) or 0, each row weighted by ``weights`` (1 if none)."""
    if rows.shape[1] != len(FEATURES):
        raise ValueError(f"rows have {rows.shape[1]} columns, FEATURES has {len(FEATURES)}")
    if len(set(labels.tolist())) < 2:
        raise ValueError("training needs both abusive and legitimate examples")
    data = lightgbm.Dataset(rows, label=labels, weight=weights, feature_name=list(FEATURES), free_raw_data=True)
    booster = lightgbm.train({**PARAMS, "seed": seed}, data, num_boost_round=rounds)
    return Model(booster)


def from_text(text: str) -> Model:
    try:
        booster = lightgbm.Booster(model_str=text)
    except lightgbm.basic.LightGBMError as e:
        raise ModelError(f"not a LightGBM text model: {e}") from None
    names = tuple(booster.feature_name())
    if names != FEATURES:
        missing = sorted(set(FEATURES) - set(names))
        extra = sorted(set(names) - set(FEATURES))
        raise ModelError(f"the model was trained on other features (missing {missing}, unknown {extra})")
    return Model(booster)


def load(path: Path | None = None) -> Model | None:
    """The model at ``path``, or the one shipped with Cove; ``None`` when none is shipped."""
    if path is not None:
        try:
            return from_text(path.read_text())
        except OSError as e:
            raise ModelError(f"cannot read {path}: {e.strerror}") from None
    shipped = resources.files("cove.safety").joinpath("model", SHIPPED)
    if not shipped.is_file():
        return None
    return from_text(shipped.read_text())
