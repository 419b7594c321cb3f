"""Compare the price models by k-fold cross-validation on a claims table, and fit one on all claims.

    python -m src.damage_cost.evaluate_pricing CLAIMS.csv [--folds 5] [--seed 0] [--out pricing_cv.csv]
        [--subset train] [--overlap dice|iou|cover] [--overlaps-from DATASET_DIR]
        [--fit-out MODEL.json --model regression]

Prints the out-of-fold MAE and MAPE (%) of every model of PRICE_MODELS side by side, with how many rows each
fallback level priced, and writes that table as CSV. Bad input exits with code 2 and the error message.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from src.damage_cost.claims import ClaimsError, claims_with_overlaps, read_claims
from src.damage_cost.features import OVERLAPS, overlap_columns, part_names_of
from src.damage_cost.price_models import DEFAULT_OVERLAP, PRICE_MODELS, PriceModel, save_price_model
from src.data.annotations import DatasetError

DEFAULT_OUT = "pricing_cv.csv"


def select_subset(table: pd.DataFrame, subset: str | None, source: str | os.PathLike) -> pd.DataFrame:
    """Rows whose ``subset`` column equals subset (all rows when None); ClaimsError when none or no such column."""
    if subset is None:
        return table
    if "subset" not in table.columns:
        raise ClaimsError(f"{source}: no column 'subset' to select '{subset}' rows from")
    selected = table[table["subset"] == subset]
    if selected.empty:
        found = ", ".join(sorted(map(str, table["subset"].unique())))
        raise ClaimsError(f"{source}: no row with subset '{subset}' (found: {found})")
    return selected.reset_index(drop=True)


def cross_validate(table: pd.DataFrame, folds: int = 5, seed: int = 0,
                   overlap: str = DEFAULT_OVERLAP) -> pd.DataFrame:
    """Out-of-fold MAE and MAPE of each model (KFold, shuffled with seed): one row per model with ``model``,
    ``mae``, ``mape_percent`` and ``fallbacks`` ('level=count ...' over the out-of-fold predictions)."""
    if len(table) < folds:
        raise ClaimsError(f"{folds}-fold cross-validation needs at least {folds} claims, got {len(table)}")
    splits = list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(table))
    price = table["price"].to_numpy(np.float64)
    rows = []
    for kind, model_class in PRICE_MODELS.items():
        predicted = np.zeros(len(table))
        fallback = np.empty(len(table), dtype=object)
        for train_rows, test_rows in splits:
            model = model_class(overlap=overlap).fit(table.iloc[train_rows])
            prediction = model.predict(table.iloc[test_rows])
            predicted[test_rows] = prediction["price"].to_numpy()
            fallback[test_rows] = prediction["fallback"].to_numpy()
        error = np.abs(predicted - price)
        counts = pd.Series(fallback).value_counts()
        rows.append({"model": kind, "mae": error.mean(), "mape_percent": 100.0 * (error / price).mean(),
                     "fallbacks": " ".join(f"{level}={count}" for level, count in counts.items())})
    return pd.DataFrame(rows)


def _fit_and_save(table: pd.DataFrame, kind: str, overlap: str, out_path: str | os.PathLike) -> PriceModel:
    model = PRICE_MODELS[kind](overlap=overlap).fit(table)
    save_price_model(model, out_path)
    return model


def fit_price_model(claims_path: str | os.PathLike, kind: str, out_path: str | os.PathLike,
                    subset: str | None = None) -> PriceModel:
    """Fit a model of PRICE_MODELS kind on all rows of a claims CSV (or those of one subset), save it to out_path
    (JSON, see save_price_model) and return it. Raises ClaimsError on a bad claims file, KeyError on a bad kind."""
    if kind not in PRICE_MODELS:
        raise KeyError(f"unknown price model kind '{kind}' (known: {', '.join(PRICE_MODELS)})")
    table = select_subset(read_claims(claims_path), subset, claims_path)
    return _fit_and_save(table, kind, DEFAULT_OVERLAP, out_path)


def _load_table(args: argparse.Namespace) -> pd.DataFrame:
    """The claims (rebuilt from masks with --overlaps-from), the chosen subset, checked for the overlap columns."""
    if args.overlaps_from is not None:
        table = claims_with_overlaps(args.overlaps_from, args.claims)
    else:
        table = read_claims(args.claims)
    table = select_subset(table, args.subset, args.claims)
    missing = [column for column in overlap_columns(args.overlap, part_names_of(table)) if column not in table]
    if missing:
        raise ClaimsError(f"{args.claims}: no column(s) {', '.join(missing)} for --overlap {args.overlap}; "
                          f"add --overlaps-from DATASET_DIR to rebuild them from the masks")
    return table


def format_table(results: pd.DataFrame) -> str:
    """The results as an aligned text table (MAE with one decimal, MAPE with two)."""
    shown = results.assign(mae=results["mae"].map("{:.1f}".format),
                           mape_percent=results["mape_percent"].map("{:.2f}".format))
    return shown.rename(columns={"mape_percent": "mape_%"}).to_string(index=False)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("claims", type=Path, help="claims CSV (one row per damage, e.g. the synthetic claims.csv)")
    parser.add_argument("--folds", type=int, default=5, help="number of cross-validation folds (>= 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled fold split")
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT),
                        help="CSV file for the results table (a bare name is written in the current folder)")
    parser.add_argument("--subset", default=None, help="use only the rows whose 'subset' column equals this")
    parser.add_argument("--overlap", choices=OVERLAPS, default=DEFAULT_OVERLAP,
                        help="overlap measure choosing the main part; iou and cover need those columns in the "
                             "claims file or --overlaps-from")
    parser.add_argument("--overlaps-from", type=Path, default=None, metavar="DATASET_DIR",
                        help="rebuild the dice, iou and cover columns from the masks of this dataset folder "
                             "(parts/ and damage/ COCO subsets whose damage annotation ids are the claims' "
                             "annotation_id)")
    parser.add_argument("--fit-out", type=Path, default=None, metavar="MODEL.json",
                        help="also fit --model on all (selected) rows and save it here")
    parser.add_argument("--model", choices=list(PRICE_MODELS), default="regression", help="model kind for --fit-out")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error(f"--folds must be at least 2, got {args.folds}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        table = _load_table(args)
        results = cross_validate(table, args.folds, args.seed, args.overlap)
    except (ClaimsError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.folds}-fold cross-validation (seed {args.seed}) on {len(table)} claims of {args.claims}"
          f"{f' (subset {args.subset})' if args.subset else ''}, main part by {args.overlap}:")
    print(format_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.out, index=False)
    print(f"table written to {args.out}")
    if args.fit_out is not None:
        _fit_and_save(table, args.model, args.overlap, args.fit_out)
        print(f"{args.model} model fitted on {len(table)} claims, saved to {args.fit_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
