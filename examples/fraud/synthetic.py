"""Seeded synthetic card transactions with compromised-card fraud, late labels and drift knobs.

Every draw comes from one ``numpy.random.Generator`` in a fixed order, so the same arguments
give the same bytes. The world:

- customers with a profile (age, tenure, credit limit, home region) and a latent rhythm: a
  daily rate, a preferred hour, an amount distribution and a handful of usual merchants;
- merchants with a category and a hidden risk level that fraudsters are drawn to;
- fraud as compromised-card episodes: a burst of transactions at risky merchants, often at
  night, with amounts unlike the customer's; a quarter of episodes mimic the customer;
- labels that arrive late: ``label_available_at`` is the transaction time plus a chargeback
  delay of days to weeks, drawn independently of the label;
- from ``drift_start_day``: amount inflation and a shift to online merchants (data drift), and
  card-testing bursts of tiny amounts at low-risk online merchants (concept drift).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from fsml.atomic import staged_dir

DAY = 86_400
REGIONS = ("north", "south", "east", "west", "central")
REGION_WEIGHTS = (0.22, 0.24, 0.18, 0.2, 0.16)

# name, share of merchants, amount scale, online, probability of being high risk
CATEGORIES = (
    ("grocery", 0.20, 1.0, False, 0.01),
    ("restaurant", 0.16, 0.8, False, 0.02),
    ("fuel", 0.10, 1.2, False, 0.03),
    ("retail", 0.16, 1.6, False, 0.04),
    ("travel", 0.06, 4.0, False, 0.08),
    ("electronics", 0.07, 3.0, False, 0.25),
    ("jewelry", 0.03, 5.0, False, 0.35),
    ("online_services", 0.08, 0.7, True, 0.05),
    ("digital_goods", 0.08, 0.6, True, 0.20),
    ("gaming", 0.06, 0.8, True, 0.30),
)
RISK_LEVELS = ("low", "medium", "high")
RISK_WEIGHT = np.array([1.0, 5.0, 40.0])  # how strongly fraudsters prefer each level


@dataclass(frozen=True)
class GeneratorConfig:
    """Arguments of ``fsml data generate``; also recorded next to the data."""

    customers: int = 2_000
    merchants: int = 300
    days: int = 90
    end_date: date | None = None  # default: today (UTC); the data ends at its 00:00 UTC
    seed: int = 42
    drift_start_day: int | None = None
    favourite_merchants: int = 8
    episode_rate: float = 0.0025  # compromised-card episodes per customer per day
    card_testing_rate: float = 0.003  # card-testing episodes per customer per day, after drift
    amount_inflation: float = 1.4  # amounts after drift are this much larger
    online_boost: float = 4.0  # weight of online merchants in new choices after drift

    def __post_init__(self) -> None:
        checks = {
            "customers": self.customers >= 1,
            "merchants": self.merchants >= 10,
            "days": self.days >= 1,
            "drift_start_day": self.drift_start_day is None or 0 <= self.drift_start_day < self.days,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid generator arguments: {', '.join(bad)} ({self.describe()})")

    @property
    def end(self) -> datetime:
        day = self.end_date or datetime.now(UTC).date()
        return datetime.combine(day, time(0), tzinfo=UTC)

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    def describe(self) -> dict[str, object]:
        out = asdict(self)
        out["end_date"] = self.end.date().isoformat()
        return out


@dataclass(frozen=True)
class SyntheticData:
    customers: pd.DataFrame
    merchants: pd.DataFrame
    transactions: pd.DataFrame


def generate(config: GeneratorConfig) -> SyntheticData:
    """Draw the whole world; pure function of ``config``."""
    rng = np.random.default_rng(config.seed)
    merchants = _merchants(rng, config.merchants)
    customers = _customers(rng, config)
    legit = _legit_transactions(rng, config, customers, merchants)
    fraud = _compromised_episodes(rng, config, customers, merchants)
    testing = _card_testing_episodes(rng, config, customers, merchants)
    events = pd.concat([legit, fraud, testing], ignore_index=True)
    return SyntheticData(
        customers=_customer_table(customers, config),
        merchants=_merchant_table(merchants, config),
        transactions=_transaction_table(rng, events, config),
    )


def _merchants(rng: np.random.Generator, n: int) -> pd.DataFrame:
    shares = np.array([c[1] for c in CATEGORIES])
    category = rng.choice(len(CATEGORIES), size=n, p=shares / shares.sum())
    p_high = np.array([c[4] for c in CATEGORIES])[category]
    u = rng.random(n)
    risk = np.where(u < p_high, 2, np.where(u < p_high + 0.15, 1, 0))
    popularity = rng.pareto(1.2, n) + 1.0
    return pd.DataFrame(
        {
            "category": category,
            "risk": risk,
            "online": np.array([c[3] for c in CATEGORIES])[category],
            "scale": np.array([c[2] for c in CATEGORIES])[category],
            "popularity": popularity / popularity.sum(),
        }
    )


def _customers(rng: np.random.Generator, config: GeneratorConfig) -> pd.DataFrame:
    n = config.customers
    credit = np.clip(np.round(np.exp(rng.normal(8.2, 0.6, n)), -2), 500, 50_000)
    night_owl = rng.random(n) < 0.05
    return pd.DataFrame(
        {
            "age": np.clip(np.round(rng.normal(42, 14, n)), 18, 90).astype(np.int64),
            "region": rng.choice(len(REGIONS), size=n, p=REGION_WEIGHTS),
            "tenure_at_start": rng.uniform(30, 15 * 365, n),
            "credit_limit": credit,
            "rate": np.clip(rng.gamma(2.0, 1.25, n), 0.2, 15.0),
            "amount_mu": rng.normal(3.2, 0.45, n) + 0.25 * np.log(credit / 3_600),
            "amount_sigma": rng.uniform(0.45, 0.9, n),
            "peak_hour": np.where(night_owl, 23.0, rng.normal(14.0, 2.5, n)),
            "hour_spread": rng.uniform(2.5, 4.5, n),
        }
    )


def _favourites(rng: np.random.Generator, merchants: pd.DataFrame, n: int, k: int) -> np.ndarray:
    return rng.choice(len(merchants), size=(n, k), p=merchants["popularity"].to_numpy())


def _legit_transactions(
    rng: np.random.Generator,
    config: GeneratorConfig,
    customers: pd.DataFrame,
    merchants: pd.DataFrame,
) -> pd.DataFrame:
    favourites = _favourites(rng, merchants, len(customers), config.favourite_merchants)
    counts = rng.poisson(customers["rate"].to_numpy() * config.days)
    cust = np.repeat(np.arange(len(customers)), counts)
    total = len(cust)
    day = rng.integers(0, config.days, total)
    hour = np.mod(
        rng.normal(customers["peak_hour"].to_numpy()[cust], customers["hour_spread"].to_numpy()[cust]),
        24.0,
    )
    seconds = day * DAY + np.floor(hour * 3_600).astype(np.int64)
    drifted = _after_drift(day, config)

    fav_share = np.where(drifted, 0.6, 0.8)
    use_fav = rng.random(total) < fav_share
    fav_pick = favourites[cust, rng.integers(0, config.favourite_merchants, total)]
    base_pick = rng.choice(len(merchants), size=total, p=merchants["popularity"].to_numpy())
    online_weights = merchants["popularity"].to_numpy() * np.where(
        merchants["online"].to_numpy(), config.online_boost, 1.0
    )
    drift_pick = rng.choice(len(merchants), size=total, p=online_weights / online_weights.sum())
    merchant = np.where(use_fav, fav_pick, np.where(drifted, drift_pick, base_pick))

    log_amount = rng.normal(
        customers["amount_mu"].to_numpy()[cust] + np.log(merchants["scale"].to_numpy()[merchant]),
        customers["amount_sigma"].to_numpy()[cust],
    )
    amount = np.exp(log_amount) * np.where(drifted, config.amount_inflation, 1.0)
    return _events(cust, merchant, seconds, amount, pattern=0)


def _after_drift(day: np.ndarray, config: GeneratorConfig) -> np.ndarray:
    if config.drift_start_day is None:
        return np.zeros(len(day), dtype=bool)
    return day >= config.drift_start_day


def _episode_starts(
    rng: np.random.Generator, n_customers: int, rate: float, first_day: int, days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Customers hit by an episode, and the episode start in seconds since the data start."""
    span = days - first_day
    counts = rng.poisson(rate * span, n_customers) if span > 0 else np.zeros(n_customers, int)
    cust = np.repeat(np.arange(n_customers), counts)
    start = first_day * DAY + rng.integers(0, max(span, 1) * DAY, len(cust))
    return cust, start


def _burst(
    rng: np.random.Generator, cust: np.ndarray, start: np.ndarray, size: np.ndarray, mean_gap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expand episodes into transactions: (episode index, customer, seconds)."""
    episode = np.repeat(np.arange(len(cust)), size)
    if len(episode) == 0:
        return episode, cust[episode], start[episode]
    gaps = rng.exponential(mean_gap, len(episode))
    first = np.concatenate([[0], np.cumsum(size)[:-1]])
    offsets = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first] - gaps[first], size)
    return episode, cust[episode], start[episode] + offsets.astype(np.int64)


def _compromised_episodes(
    rng: np.random.Generator,
    config: GeneratorConfig,
    customers: pd.DataFrame,
    merchants: pd.DataFrame,
) -> pd.DataFrame:
    cust, start = _episode_starts(rng, len(customers), config.episode_rate, 0, config.days)
    night = rng.random(len(cust)) < 0.55
    start = np.where(night, (start // DAY) * DAY + rng.integers(0, 5 * 3_600, len(cust)), start)
    stealthy = rng.random(len(cust)) < 0.25
    size = 3 + rng.poisson(5, len(cust))
    episode, fcust, seconds = _burst(rng, cust, start, size, mean_gap=40 * 60)

    risk_weights = merchants["popularity"].to_numpy() * RISK_WEIGHT[merchants["risk"].to_numpy()]
    risky_pick = rng.choice(len(merchants), size=len(episode), p=risk_weights / risk_weights.sum())
    usual_pick = rng.choice(len(merchants), size=len(episode), p=merchants["popularity"].to_numpy())
    merchant = np.where(stealthy[episode], usual_pick, risky_pick)

    usual = np.exp(rng.normal(customers["amount_mu"].to_numpy()[fcust], customers["amount_sigma"].to_numpy()[fcust]))
    unusual = np.minimum(
        np.exp(rng.normal(5.3, 0.9, len(episode))),
        0.9 * customers["credit_limit"].to_numpy()[fcust],
    )
    amount = np.where(stealthy[episode], 1.5 * usual, unusual)
    amount = amount * np.where(_after_drift(seconds // DAY, config), config.amount_inflation, 1.0)
    return _events(fcust, merchant, seconds, amount, pattern=1)


def _card_testing_episodes(
    rng: np.random.Generator,
    config: GeneratorConfig,
    customers: pd.DataFrame,
    merchants: pd.DataFrame,
) -> pd.DataFrame:
    """Concept drift: many tiny charges within minutes at low-risk online merchants."""
    if config.drift_start_day is None:
        return _events(*(np.zeros(0, np.int64),) * 3, np.zeros(0), pattern=2)
    cust, start = _episode_starts(rng, len(customers), config.card_testing_rate, config.drift_start_day, config.days)
    size = 6 + rng.poisson(8, len(cust))
    episode, fcust, seconds = _burst(rng, cust, start, size, mean_gap=150)
    targets = np.flatnonzero(merchants["online"].to_numpy() & (merchants["risk"].to_numpy() == 0))
    if len(targets) == 0:
        targets = np.flatnonzero(merchants["online"].to_numpy())
    site = rng.choice(targets, size=len(cust))
    amount = rng.uniform(0.5, 5.0, len(episode))
    return _events(fcust, site[episode], seconds, amount, pattern=2)


PATTERNS = ("legit", "compromised", "card_testing")


def _events(
    cust: np.ndarray, merchant: np.ndarray, seconds: np.ndarray, amount: np.ndarray, pattern: int
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cust": cust.astype(np.int64),
            "merchant": merchant.astype(np.int64),
            "seconds": seconds.astype(np.int64),
            "amount": amount.astype(np.float64),
            "pattern": np.full(len(cust), pattern, dtype=np.int8),
        }
    )


def _timestamps(start: datetime, seconds: np.ndarray) -> pd.Series:
    base = np.datetime64(start.replace(tzinfo=None), "us")
    values = base + seconds.astype("timedelta64[s]").astype("timedelta64[us]")
    return pd.Series(values).dt.tz_localize("UTC")


def _transaction_table(rng: np.random.Generator, events: pd.DataFrame, config: GeneratorConfig) -> pd.DataFrame:
    events = events[(events["seconds"] >= 0) & (events["seconds"] < config.days * DAY)]
    events = events.sort_values(["seconds", "cust", "merchant", "amount", "pattern"], kind="mergesort").reset_index(
        drop=True
    )
    delay = np.round((rng.gamma(2.0, 3.0, len(events)) + 0.5) * DAY).astype(np.int64)
    return pd.DataFrame(
        {
            "transaction_id": np.arange(1, len(events) + 1, dtype=np.int64),
            "customer_id": events["cust"].to_numpy() + 1,
            "merchant_id": events["merchant"].to_numpy() + 1,
            "amount": np.maximum(np.round(events["amount"].to_numpy(), 2), 0.5),
            "timestamp": _timestamps(config.start, events["seconds"].to_numpy()),
            "is_fraud": (events["pattern"].to_numpy() > 0).astype(np.int64),
            "label_available_at": _timestamps(config.start, events["seconds"].to_numpy() + delay),
            "fraud_pattern": pd.Categorical.from_codes(events["pattern"], PATTERNS).astype(str),
        }
    )


def _customer_table(customers: pd.DataFrame, config: GeneratorConfig) -> pd.DataFrame:
    opened = -np.round(customers["tenure_at_start"].to_numpy() * DAY).astype(np.int64)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, len(customers) + 1, dtype=np.int64),
            "age": customers["age"].to_numpy(),
            "home_region": np.array(REGIONS)[customers["region"].to_numpy()],
            "account_opened_at": _timestamps(config.start, opened),
            "credit_limit": customers["credit_limit"].to_numpy(),
        }
    )


def _merchant_table(merchants: pd.DataFrame, config: GeneratorConfig) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "merchant_id": np.arange(1, len(merchants) + 1, dtype=np.int64),
            "category": np.array([c[0] for c in CATEGORIES])[merchants["category"].to_numpy()],
            "is_online": merchants["online"].to_numpy().astype(np.int64),
            "risk_level": np.array(RISK_LEVELS)[merchants["risk"].to_numpy()],
            "onboarded_at": _timestamps(config.start, np.zeros(len(merchants), np.int64)),
        }
    )


# The files an application and its neighbours would hold: reference tables exported by other
# systems, and the transactions and labels as they are pushed (columns of the feature repo's
# `transactions` and `labels` push sources).
TRANSACTION_COLUMNS = ["transaction_id", "customer_id", "merchant_id", "amount", "timestamp"]
LABEL_COLUMNS = ["transaction_id", "is_fraud", "label_available_at"]
RAW_TABLES = ("customers", "merchants", "transactions", "labels")


def save(data: SyntheticData, config: GeneratorConfig, raw_dir: Path) -> dict[str, object]:
    """Publish the tables and their description together, or not at all."""
    tx = data.transactions
    tables = {
        "customers": data.customers,
        "merchants": data.merchants,
        "transactions": tx[TRANSACTION_COLUMNS],
        "labels": tx[LABEL_COLUMNS].sort_values(["label_available_at", "transaction_id"], kind="mergesort"),
    }
    meta = {
        "generator": config.describe(),
        "start": config.start.isoformat(),
        "end": config.end.isoformat(),
        "rows": {name: len(table) for name, table in tables.items()},
        "fraud_rate": float(tx["is_fraud"].mean()) if len(tx) else 0.0,
    }
    with staged_dir(raw_dir) as stage:
        for name, table in tables.items():
            table.to_parquet(stage / f"{name}.parquet", index=False)
        (stage / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return meta


def load_meta(raw_dir: Path) -> dict[str, object]:
    path = raw_dir / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"no generated data at {raw_dir}: run `fsml data generate`")
    return json.loads(path.read_text())
