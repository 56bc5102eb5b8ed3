"""Scenario knobs for the monitor: what goes wrong in production, applied to generated data.

Each knob is a pure function from a table (or the whole ``SyntheticData``) to a changed copy,
changing only rows from a given time, so a champion trained before it sees normal data and the
traffic after it sees the change. The kinds of change the monitor must tell apart:

- data-quality breaks, applied to a published feature table as an upstream job would break it:
  a column turning half null, a column stuck at one value; or to raw transactions: a unit change
  (amounts in cents);
- distribution drift: a merchant-mix shift (traffic at some merchant categories thinned out,
  every row kept or dropped whole, so a row's label still goes with its inputs: a covariate
  shift), and a drift confined to one segment (amounts at one merchant category scaled);
- concept drift: labels permuted among the rows after the change (inputs unchanged, labels
  meaningless);
- a tail-only change: the fraud stops (compromised-card rows dropped), so the top of the score
  distribution thins while the bulk stays.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd
from fsml.examples.fraud.synthetic import SyntheticData


def _after(times: pd.Series, since: datetime) -> np.ndarray:
    return (pd.to_datetime(times, utc=True) >= pd.Timestamp(since)).to_numpy()


def null_column(table: pd.DataFrame, column: str, since: datetime, share: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """``share`` of the rows from ``since`` lose ``column``'s value."""
    rng = np.random.default_rng(seed)
    out = table.copy()
    hit = _after(out["event_timestamp"], since) & (rng.random(len(out)) < share)
    out[column] = out[column].astype("float64").where(~hit, np.nan)
    return out


def stuck_value(table: pd.DataFrame, column: str, since: datetime, value: float) -> pd.DataFrame:
    """Every row from ``since`` carries ``value`` in ``column`` (a default left by a failed join)."""
    out = table.copy()
    out.loc[_after(out["event_timestamp"], since), column] = value
    return out


def unit_change(transactions: pd.DataFrame, since: datetime, factor: float = 100.0) -> pd.DataFrame:
    """Amounts from ``since`` in another unit (cents instead of dollars: x100)."""
    out = transactions.copy()
    hit = _after(out["timestamp"], since)
    out.loc[hit, "amount"] = np.round(out.loc[hit, "amount"] * factor, 2)
    return out


def permuted_labels(transactions: pd.DataFrame, since: datetime, seed: int = 0) -> pd.DataFrame:
    """Labels from ``since`` shuffled among those rows: as many frauds, on the wrong rows."""
    rng = np.random.default_rng(seed)
    out = transactions.copy()
    rows = np.flatnonzero(_after(out["timestamp"], since))
    labels = out["is_fraud"].to_numpy().copy()
    labels[rows] = rng.permutation(labels[rows])
    out["is_fraud"] = labels
    return out


def _categories(data: SyntheticData) -> pd.Series:
    """Each transaction's merchant category."""
    category = data.merchants.set_index("merchant_id")["category"]
    return data.transactions["merchant_id"].map(category)


def merchant_mix_shift(
    data: SyntheticData, since: datetime, thinned: tuple[str, ...], keep: float = 0.3, seed: int = 0
) -> SyntheticData:
    """From ``since``, only ``keep`` of the transactions at merchants of the ``thinned``
    categories happen; whole rows go, so the rows left keep their labels."""
    rng = np.random.default_rng(seed)
    tx = data.transactions
    drop = _after(tx["timestamp"], since) & _categories(data).isin(thinned).to_numpy() & (rng.random(len(tx)) > keep)
    return replace(data, transactions=tx[~drop].reset_index(drop=True))


def segment_drift(data: SyntheticData, since: datetime, category: str, factor: float) -> SyntheticData:
    """From ``since``, amounts at merchants of one category are ``factor`` times larger."""
    tx = data.transactions.copy()
    hit = _after(tx["timestamp"], since) & (_categories(data) == category).to_numpy()
    tx.loc[hit, "amount"] = np.round(tx.loc[hit, "amount"] * factor, 2)
    return replace(data, transactions=tx)


def fraud_stops(transactions: pd.DataFrame, since: datetime) -> pd.DataFrame:
    """From ``since``, no more fraud: the compromised-card and card-testing rows are gone."""
    drop = _after(transactions["timestamp"], since) & (transactions["is_fraud"].to_numpy() == 1)
    return transactions[~drop].reset_index(drop=True)
