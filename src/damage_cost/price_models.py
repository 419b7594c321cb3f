"""Price models: from a feature/claims table (one row per damage) to a repair price, saved as one JSON file.

Every model has ``fit(table) -> self`` (the table needs a ``price`` column), ``predict(table)`` -> DataFrame [N] with
``price`` (float) and ``fallback`` (the level used for the row) on the table's index, and ``to_dict()``; the main
part of a damage is the part with the largest ``<part>_<overlap>`` (see :func:`src.damage_cost.features.main_part`).
``overlap`` defaults to dice: on the synthetic claims it predicts better than cover (whose columns a claims.csv lacks)
and picks the same main part as IoU.

* ``global_mean``: the mean price of all claims (``fallback="global"``).
* ``group_mean``: the published method, mean price per (main part, severity); an unseen key falls back to the
  severity mean (``"severity"``), then to the global mean (``"global"``); a seen key reports ``"part+severity"``.
* ``regression``: ridge regression of log(price) (``fallback="model"``), see :class:`RegressionPriceModel`.
"""
from __future__ import annotations

import json
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from src.damage_cost.features import SEVERITIES, UNKNOWN_PART, main_part, overlap_columns, part_names_of, severity_of

FORMAT = "ms_rcnn-price-model"
VERSION = 1
DEFAULT_OVERLAP = "dice"


class PriceModelError(ValueError):
    """A price model file cannot be loaded (not JSON, another format or version, unknown kind, bad content)."""


class PriceModel(ABC):
    """Common state: the part names (tie-breaking order) and the overlap measure that picks the main part."""

    kind: ClassVar[str]

    def __init__(self, overlap: str = DEFAULT_OVERLAP, part_names: Sequence[str] | None = None):
        overlap_columns(overlap, [])  # rejects an unknown measure
        self.overlap = overlap
        self.part_names = list(part_names) if part_names is not None else None

    def _keys(self, table: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """(main part [N], severity [N]) of each row."""
        return main_part(table, self.overlap, self.part_names), severity_of(table)

    def _start_fit(self, table: pd.DataFrame) -> np.ndarray:
        """Take the part names from the table when not given; return the prices [N] float64."""
        if len(table) == 0:
            raise ValueError(f"cannot fit a {self.kind} price model on an empty table")
        if self.part_names is None:
            self.part_names = part_names_of(table)
        return table["price"].to_numpy(np.float64)

    def _check_fitted(self) -> None:
        if not self._fitted():
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(table) or load_price_model(path)")

    @abstractmethod
    def _fitted(self) -> bool:
        """True once fitted or loaded."""

    @abstractmethod
    def fit(self, table: pd.DataFrame) -> "PriceModel":
        """Fit on a table [N rows] with the feature columns and ``price``; returns self."""

    @abstractmethod
    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        """Prices of a feature table [N rows]: DataFrame [N] with ``price`` (float) and ``fallback`` (str)."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The fitted parameters, JSON-serialisable."""

    @classmethod
    @abstractmethod
    def from_params(cls, params: dict[str, Any], overlap: str, part_names: list[str]) -> "PriceModel":
        """A fitted model from :meth:`params` output."""

    def to_dict(self) -> dict[str, Any]:
        """kind, part names, overlap measure and fitted parameters (what :func:`save_price_model` writes)."""
        self._check_fitted()
        return {"kind": self.kind, "part_names": list(self.part_names), "overlap": self.overlap,
                "params": self.params()}


def _frame(table: pd.DataFrame, price: np.ndarray, fallback: np.ndarray | str) -> pd.DataFrame:
    return pd.DataFrame({"price": np.asarray(price, np.float64),
                         "fallback": np.broadcast_to(np.asarray(fallback, dtype=object), (len(table),))},
                        index=table.index)


class GlobalMeanPriceModel(PriceModel):
    """Baseline: every damage costs the mean training price."""

    kind = "global_mean"

    def __init__(self, overlap: str = DEFAULT_OVERLAP, part_names: Sequence[str] | None = None):
        super().__init__(overlap, part_names)
        self.mean: float | None = None

    def _fitted(self) -> bool:
        return self.mean is not None

    def fit(self, table: pd.DataFrame) -> "GlobalMeanPriceModel":
        self.mean = float(self._start_fit(table).mean())
        return self

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        self._check_fitted()
        return _frame(table, np.full(len(table), self.mean), "global")

    def params(self) -> dict[str, Any]:
        return {"mean": self.mean}

    @classmethod
    def from_params(cls, params: dict[str, Any], overlap: str, part_names: list[str]) -> "GlobalMeanPriceModel":
        model = cls(overlap, part_names)
        model.mean = float(params["mean"])
        return model


class GroupMeanPriceModel(PriceModel):
    """The published method: mean price per (main part, severity), with severity and global fallbacks."""

    kind = "group_mean"

    def __init__(self, overlap: str = DEFAULT_OVERLAP, part_names: Sequence[str] | None = None):
        super().__init__(overlap, part_names)
        self.groups: dict[tuple[str, str], tuple[float, int]] = {}
        self.severity_means: dict[str, tuple[float, int]] = {}
        self.global_mean: tuple[float, int] | None = None

    def _fitted(self) -> bool:
        return self.global_mean is not None

    def fit(self, table: pd.DataFrame) -> "GroupMeanPriceModel":
        price = pd.Series(self._start_fit(table), index=table.index)
        part, severity = self._keys(table)
        stats = price.groupby([part, severity]).agg(["mean", "count"])
        self.groups = {(str(p), str(s)): (float(m), int(n)) for (p, s), (m, n) in stats.iterrows()}
        stats = price.groupby(severity).agg(["mean", "count"])
        self.severity_means = {str(s): (float(m), int(n)) for s, (m, n) in stats.iterrows()}
        self.global_mean = (float(price.mean()), len(price))
        return self

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        self._check_fitted()
        part, severity = self._keys(table)
        levels = []
        for key in zip(part, severity):
            if key in self.groups:
                levels.append((self.groups[key][0], "part+severity"))
            elif key[1] in self.severity_means:
                levels.append((self.severity_means[key[1]][0], "severity"))
            else:
                levels.append((self.global_mean[0], "global"))
        prices, fallbacks = zip(*levels) if levels else ((), ())
        return _frame(table, np.array(prices, np.float64), np.array(fallbacks, dtype=object))

    def params(self) -> dict[str, Any]:
        return {"groups": [{"part": p, "severity": s, "mean": m, "count": n}
                           for (p, s), (m, n) in sorted(self.groups.items())],
                "severity_means": [{"severity": s, "mean": m, "count": n}
                                   for s, (m, n) in sorted(self.severity_means.items())],
                "global_mean": {"mean": self.global_mean[0], "count": self.global_mean[1]}}

    @classmethod
    def from_params(cls, params: dict[str, Any], overlap: str, part_names: list[str]) -> "GroupMeanPriceModel":
        model = cls(overlap, part_names)
        model.groups = {(g["part"], g["severity"]): (float(g["mean"]), int(g["count"])) for g in params["groups"]}
        model.severity_means = {g["severity"]: (float(g["mean"]), int(g["count"])) for g in params["severity_means"]}
        model.global_mean = (float(params["global_mean"]["mean"]), int(params["global_mean"]["count"]))
        return model


AREA_GAINS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


class RegressionPriceModel(PriceModel):
    """Ridge regression of log(price) on the main part, the severity and the damage area.

    log(price) = intercept + part effect + severity effect + b * g + cell offset + cell slope * g, with
    ``g = log(1 + area_gain * sqrt(damage_area))`` and a cell = (main part, severity). The intercept, part, severity
    and area effects (first part, 'minor' as references) are fitted freely; the cell offsets and slopes carry a ridge
    penalty ``alpha``, so a rare or unseen cell gets the additive prediction and a common one its own price level
    and area dependence (e.g. a flat replacement price). The price is exp of the prediction (a median estimate).
    ``area_gain`` None (default) picks it from AREA_GAINS by the least squared error on the training table, so
    the area curve adapts to the claims rather than to a constant chosen in advance.
    """

    kind = "regression"

    def __init__(self, overlap: str = DEFAULT_OVERLAP, part_names: Sequence[str] | None = None,
                 alpha: float = 1.0, area_gain: float | None = None):
        super().__init__(overlap, part_names)
        self.alpha = float(alpha)
        self.area_gain = None if area_gain is None else float(area_gain)
        self.coefficients: dict[str, float] | None = None

    def _fitted(self) -> bool:
        return self.coefficients is not None

    def _terms(self) -> tuple[list[str], list[str]]:
        """(free term names, penalised term names) for the model's part names."""
        parts = list(self.part_names) + [UNKNOWN_PART]
        area = f"log(1+{self.area_gain:g}*sqrt(damage_area))"
        free = (["intercept"] + [f"part={p}" for p in parts[1:]] + [f"severity={s}" for s in SEVERITIES[1:]]
                + [area])
        cells = [f"part={p} & severity={s}" for p in parts for s in SEVERITIES]
        return free, cells + [f"{area} & {cell}" for cell in cells]

    def _design(self, table: pd.DataFrame) -> np.ndarray:
        """Design matrix [N, len(free) + len(penalised)] in the order of :meth:`_terms`."""
        part, severity = (series.to_numpy() for series in self._keys(table))
        parts = list(self.part_names) + [UNKNOWN_PART]
        area = np.log1p(self.area_gain * np.sqrt(table["damage_area"].to_numpy(np.float64)))
        part_flags = [(part == p).astype(np.float64) for p in parts]
        severity_flags = [(severity == s).astype(np.float64) for s in SEVERITIES]
        cells = [p * s for p in part_flags for s in severity_flags]
        columns = ([np.ones(len(table))] + part_flags[1:] + severity_flags[1:] + [area] + cells
                   + [area * cell for cell in cells])
        return np.column_stack(columns)

    def _solve(self, table: pd.DataFrame, target: np.ndarray) -> tuple[np.ndarray, float]:
        """(weights, sum of squared log errors) of the ridge fit for the current ``area_gain``."""
        free, penalised = self._terms()
        design = self._design(table)
        # a tiny ridge on the free terms keeps the system solvable when a part or severity is absent
        penalty = np.diag([1e-8] * len(free) + [self.alpha] * len(penalised))
        weights = np.linalg.solve(design.T @ design + penalty, design.T @ target)
        return weights, float(((design @ weights - target) ** 2).sum())

    def fit(self, table: pd.DataFrame) -> "RegressionPriceModel":
        target = np.log(self._start_fit(table))
        if self.area_gain is None:
            errors = {}
            for gain in AREA_GAINS:
                self.area_gain = gain
                errors[gain] = self._solve(table, target)[1]
            self.area_gain = min(errors, key=errors.get)
        weights, _ = self._solve(table, target)
        free, penalised = self._terms()
        self.coefficients = dict(zip(free + penalised, weights.tolist()))
        return self

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        self._check_fitted()
        free, penalised = self._terms()
        weights = np.array([self.coefficients[name] for name in free + penalised])
        return _frame(table, np.exp(self._design(table) @ weights), "model")

    def params(self) -> dict[str, Any]:
        return {"target": "log(price)", "alpha": self.alpha, "area_gain": self.area_gain,
                "coefficients": dict(self.coefficients)}

    @classmethod
    def from_params(cls, params: dict[str, Any], overlap: str, part_names: list[str]) -> "RegressionPriceModel":
        model = cls(overlap, part_names, alpha=params["alpha"], area_gain=params["area_gain"])
        free, penalised = model._terms()
        coefficients = {str(name): float(value) for name, value in params["coefficients"].items()}
        if set(coefficients) != set(free + penalised):
            raise KeyError(f"coefficients do not match the terms for parts {part_names}: expected "
                           f"{len(free + penalised)} terms such as {free[1]!r}")
        model.coefficients = coefficients
        return model


PRICE_MODELS: dict[str, type[PriceModel]] = {
    GlobalMeanPriceModel.kind: GlobalMeanPriceModel,
    GroupMeanPriceModel.kind: GroupMeanPriceModel,
    RegressionPriceModel.kind: RegressionPriceModel,
}


def save_price_model(model: PriceModel, path: str | os.PathLike) -> None:
    """Write a fitted model as one indented JSON file (temporary file in the same folder, then os.replace)."""
    path = Path(path)
    document = {"format": FORMAT, "version": VERSION, **model.to_dict()}
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_price_model(path: str | os.PathLike) -> PriceModel:
    """Read a model written by :func:`save_price_model`.

    Raises:
        PriceModelError: naming the file, when it is missing, not JSON, of another format or version, of an unknown
            kind, or its parameters are incomplete.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PriceModelError(f"{path}: price model file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PriceModelError(f"{path}: not a JSON file ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise PriceModelError(f"{path}: not a price model file (format {found!r}, expected {FORMAT!r})")
    if document.get("version") != VERSION:
        raise PriceModelError(f"{path}: price model format version {document.get('version')!r} is not supported "
                              f"(this code reads version {VERSION})")
    kind = document.get("kind")
    if kind not in PRICE_MODELS:
        raise PriceModelError(f"{path}: unknown price model kind {kind!r} (known: {', '.join(PRICE_MODELS)})")
    try:
        overlap = document["overlap"]
        overlap_columns(overlap, [])
        return PRICE_MODELS[kind].from_params(document["params"], overlap, [str(p) for p in document["part_names"]])
    except (KeyError, TypeError, ValueError) as error:
        raise PriceModelError(f"{path}: incomplete or invalid {kind} price model: {error}") from None
