"""The tuners' cost model: XGBoost ranking configurations by predicted throughput (AutoTVM's
``XGBoostCostModel``), and the ranking metrics the benchmark reports.

Labels are throughputs normalized to the best seen (``best_runtime / runtime``, in (0, 1]);
AutoTVM's labels are FLOPS / max FLOPS, the same order. An invalid measurement gets label 0
when the tuner feeds invalid points as penalties (plain ``xgb``), and no row at all when it
keeps them out of training (the validity-aware tuners).

Parameters are AutoTVM's (``max_depth`` 3, ``eta`` 0.3, ``gamma`` 1e-4, ``min_child_weight`` 1,
``subsample`` 1, ``lambda`` 1, ``alpha`` 0, ``rank:pairwise``) with random pairs per sample as
the XGBoost of AutoTVM's day drew them (``lambdarank_pair_method: mean``). AutoTVM boosts up
to 8000 rounds with early stopping on a training-set recall curve; here a fixed 100 rounds,
enough for the few hundred to few thousand points a tuning run sees and 20x cheaper.
"""

from __future__ import annotations

import numpy as np

XGB_PARAMS = {"max_depth": 3, "gamma": 0.0001, "min_child_weight": 1, "subsample": 1.0, "eta": 0.3,
              "lambda": 1.0, "alpha": 0, "objective": "rank:pairwise", "lambdarank_pair_method": "mean",
              "nthread": 1}
ROUNDS = 100


class RankingModel:
    """fit(features [n, F], labels [n]) / predict(features [m, F]) -> [m] scores (higher: faster)."""

    def __init__(self, seed: int = 0, objective: str = "rank:pairwise", rounds: int = ROUNDS):
        self.params = dict(XGB_PARAMS, objective=objective, seed=int(seed) % 2**31)
        if objective != "rank:pairwise":
            self.params.pop("lambdarank_pair_method")
        self.rounds = rounds
        self.booster = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        import xgboost as xgb

        y = np.asarray(y, dtype=np.float64)
        top = y.max() if len(y) else 0.0
        y = y / top if top > 0 else y
        order = np.random.default_rng(self.params["seed"]).permutation(len(y))  # AutoTVM shuffles rows
        d = xgb.DMatrix(np.asarray(x, dtype=np.float32)[order], label=y[order])
        self.booster = xgb.train(self.params, d, num_boost_round=self.rounds)

    @property
    def fitted(self) -> bool:
        return self.booster is not None

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.booster is None:
            return np.zeros(len(x))
        return np.asarray(self.booster.inplace_predict(np.asarray(x, dtype=np.float32)), dtype=np.float64)


def throughput_labels(runtimes: np.ndarray) -> np.ndarray:
    """[n] runtimes (nan for invalid) -> labels best/runtime in (0, 1], 0 for invalid."""
    r = np.asarray(runtimes, dtype=np.float64)
    ok = np.isfinite(r) & (r > 0)
    out = np.zeros(len(r))
    if ok.any():
        out[ok] = r[ok].min() / r[ok]
    return out


def pairwise_accuracy(pred: np.ndarray, true: np.ndarray, rng: np.random.Generator, pairs: int = 20000) -> float:
    """Share of random pairs with different true scores that the prediction orders the same way
    (ties in the prediction count one half). Higher true score = better."""
    n = len(true)
    i = rng.integers(0, n, pairs)
    j = rng.integers(0, n, pairs)
    keep = true[i] != true[j]
    i, j = i[keep], j[keep]
    if not len(i):
        return float("nan")
    s = np.sign(pred[i] - pred[j]) * np.sign(true[i] - true[j])
    return float(((s > 0) + 0.5 * (s == 0)).mean())


def ndcg(pred: np.ndarray, relevance: np.ndarray, k: int) -> float:
    """NDCG@k of ranking by ``pred`` against ``relevance`` (gain = relevance, log2 discount)."""
    k = min(k, len(pred))
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    order = np.lexsort((np.arange(len(pred)), -pred))[:k]  # stable: ties keep index order
    ideal = np.sort(relevance)[::-1][:k]
    best = float((ideal * disc).sum())
    return float((relevance[order] * disc).sum() / best) if best > 0 else float("nan")
