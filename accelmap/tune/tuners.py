"""Tuners in AutoTVM's shape: ``next_batch(n)`` proposes configurations to measure,
``update(points, results)`` reports what the measurements said; registered by name.

A tuner never measures anything itself and never proposes a configuration twice; the driver
(:mod:`accelmap.tune.driver`) owns the budget, the measurer and the log. A tuner that has nothing
left to propose (every configuration, or every one its validity rules allow, measured) returns
an empty batch, and ``stop_reason()`` says why, so a layer that stops short of its budget says
so. Points are ``[n, K]`` option
indices of a :class:`~accelmap.tune.knobs.KnobSpace`.

* ``random``: uniform without replacement. ``grid``: index order (AutoTVM's GridSearchTuner).
* ``xgb``: AutoTVM's XGBTuner. A ranking model (:class:`~accelmap.tune.ranking.RankingModel`) on knob
  features, refit after every ``plan_size`` (= batch size, 64) measurements; simulated annealing
  over the model picks the next ``plan_size`` candidates (AutoTVM's SimulatedAnnealingOptimizer:
  128 parallel chains kept from one round to the next, up to 500 steps, stop after 50 steps
  without a new top candidate, temperature 1 -> 0, one random knob changed per move, candidates
  already measured excluded, candidates predicted below 0 dropped as AutoTVM does); epsilon-greedy:
  the last 5% of each plan, and whatever the plan lacks, are random picks; the first batch is
  random. Invalid measurements are fed to the model as the worst score (0).
* ``xgb-validity``: the method. The same loop with a rule-based validity model from the
  architecture description (:class:`~accelmap.tune.validity.RuleValidity`): the first batch and
  every random pick are drawn from predicted-valid configurations only, annealing chains start
  on predicted-valid points and never step onto predicted-invalid ones (score -inf), and invalid
  measurements are kept out of the ranking model's training instead of being fed as penalties.
* ``xgb-validity-learned``: for hardware whose rules are unknown. The first batch is random;
  after every batch an XGBoost classifier (:class:`~accelmap.tune.validity.LearnedValidity`) learns
  validity from the measurements and takes the rule model's place.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from accelmap.errors import AccelmapError
from accelmap.registry import Registry
from accelmap.tune.knobs import ENUMERATION_LIMIT, KnobSpace
from accelmap.tune.measurer import MeasureResult
from accelmap.tune.ranking import RankingModel, throughput_labels

TUNERS: Registry[type[Tuner]] = Registry("tuner", "--tuner")
register = TUNERS.register
get_tuner = TUNERS.get


class Tuner:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    validity: ClassVar[str | None] = None  # "rules": the driver passes a RuleValidity

    def __init__(self, space: KnobSpace, seed: int = 0, batch_size: int = 64, validity=None):
        if batch_size <= 0:
            raise AccelmapError(f"batch size must be positive, got {batch_size}", field="--batch-size")
        self.space, self.seed, self.batch_size = space, seed, batch_size
        self.rng = np.random.default_rng(seed)
        self.visited: set = set()
        self._perm: np.ndarray | None = None
        self._perm_pt = 0

    def next_batch(self, n: int) -> np.ndarray:
        raise NotImplementedError

    def update(self, points: np.ndarray, results: list[MeasureResult]) -> None:
        pass

    def has_next(self) -> bool:
        return len(self.visited) < self.space.size

    def skip(self, points: np.ndarray) -> None:
        """Never propose these points (measured elsewhere, e.g. an earlier run's log)."""
        self._mark(points)

    def stop_reason(self) -> str:
        """Why ``next_batch`` proposes nothing more (asked by the driver when it returns no point
        before the budget is spent), in words for the run's table and summary."""
        if len(self.visited) >= self.space.size:
            return f"space exhausted: all {self.space.size:,} configurations measured"
        return (f"no untried configuration found by sampling ({len(self.visited):,} of {self.space.size:,} "
                "tried)")

    # ---- shared helpers ---------------------------------------------------------------------
    def _mark(self, points: np.ndarray) -> None:
        self.visited.update(self.space.keys(points).tolist())

    def _unvisited(self, limit: int) -> np.ndarray:
        """Up to ``limit`` distinct unvisited points in a fixed random order (not marked)."""
        space = self.space
        if space.size <= ENUMERATION_LIMIT:
            if self._perm is None:
                self._perm = self.rng.permutation(space.size)
            out = []
            i = self._perm_pt
            while i < len(self._perm) and len(out) < limit:
                k = int(self._perm[i])
                if k not in self.visited:
                    out.append(k)
                elif i == self._perm_pt:
                    self._perm_pt += 1
                i += 1
            return space.points(out) if out else np.empty((0, len(space.knobs)), dtype=np.int64)
        got, seen = [], set()
        for _ in range(64):
            cand = space.sample(max(limit, 16), self.rng)
            for p, k in zip(cand, space.keys(cand).tolist()):
                if k not in self.visited and k not in seen:
                    got.append(p)
                    seen.add(k)
            if len(got) >= limit:
                break
        return np.array(got[:limit], dtype=np.int64).reshape(-1, len(space.knobs))


@register
class RandomTuner(Tuner):
    name = "random"
    summary = "uniform random configurations, without replacement"

    def next_batch(self, n: int) -> np.ndarray:
        pts = self._unvisited(n)
        self._mark(pts)
        return pts


@register
class GridTuner(Tuner):
    name = "grid"
    summary = "every configuration in index order (AutoTVM's grid search)"

    def __init__(self, space, seed=0, batch_size=64, validity=None):
        super().__init__(space, seed, batch_size, validity)
        self.counter = 0

    def next_batch(self, n: int) -> np.ndarray:
        stop = min(self.space.size, self.counter + n)
        pts = self.space.points(np.arange(self.counter, stop))
        self.counter = stop
        self._mark(pts)
        return pts


@register
class XGBTuner(Tuner):
    name = "xgb"
    summary = "AutoTVM's XGBTuner: XGBoost ranking model, simulated annealing, epsilon-greedy; invalid = worst"
    n_iter, parallel_size, early_stop, temp, epsilon = 500, 128, 50, (1.0, 0.0), 0.05
    feed_invalid = True

    def __init__(self, space, seed=0, batch_size=64, validity=None):
        super().__init__(space, seed, batch_size, validity)
        self.plan_size = batch_size
        self.model = RankingModel(seed)
        self.validity_model = validity
        self.xs: list[np.ndarray] = []
        self.runtimes: list[float] = []
        self.measured_points: list[np.ndarray] = []
        self.measured_valid: list[bool] = []
        self.train_ct = 0
        self.trials = np.empty((0, len(space.knobs)), dtype=np.int64)
        self.trial_pt = 0
        self.chains: np.ndarray | None = None

    # ---- proposals -----------------------------------------------------------------------
    def next_batch(self, n: int) -> np.ndarray:
        out: list[np.ndarray] = []
        greedy_end = len(self.trials) - int(self.epsilon * self.plan_size)
        while len(out) < n and self.has_next():
            while self.trial_pt < len(self.trials) and \
                    int(self.space.keys(self.trials[self.trial_pt:self.trial_pt + 1])[0]) in self.visited:
                self.trial_pt += 1
            if self.trial_pt >= greedy_end:
                p = self._random_pick()
                if p is None:
                    break
            else:
                p = self.trials[self.trial_pt]
            self._mark(p[None])
            out.append(p)
        return np.array(out, dtype=np.int64).reshape(-1, len(self.space.knobs))

    def _random_pick(self) -> np.ndarray | None:
        cand = self._unvisited(256 if self.validity_model is not None else 1)
        if not len(cand):
            return None
        if self.validity_model is None:
            return cand[0]
        ok = self.validity_model.predict(cand)
        return cand[int(np.argmax(ok))] if ok.any() else self._fallback_pick(cand)

    def _fallback_pick(self, cand: np.ndarray) -> np.ndarray | None:
        return cand[0]

    # ---- feedback ------------------------------------------------------------------------
    def update(self, points: np.ndarray, results: list[MeasureResult]) -> None:
        for p, r in zip(np.asarray(points, dtype=np.int64), results):
            self.measured_points.append(p)
            self.measured_valid.append(r.valid)
            if r.valid or self.feed_invalid:
                self.xs.append(p)
                self.runtimes.append(r.runtime if r.valid else np.nan)
        self._observe()
        n = len(self.measured_points)
        if n >= self.plan_size * (self.train_ct + 1) and np.isfinite(np.asarray(self.runtimes, dtype=float)).any():
            self.model.fit(self.space.features(np.array(self.xs)), throughput_labels(np.array(self.runtimes)))
            self.trials = self._anneal(self.plan_size)
            self.trial_pt = 0
            self.train_ct += 1

    def _observe(self) -> None:
        pass

    # ---- simulated annealing over the model -------------------------------------------------
    def _score(self, points: np.ndarray) -> np.ndarray:
        s = self.model.predict(self.space.features(points))
        if self.validity_model is not None:
            s = np.where(self.validity_model.predict(points), s, -np.inf)
        return s

    def _start_points(self, n: int) -> np.ndarray:
        return self.space.sample(n, self.rng)

    def _anneal(self, num: int) -> np.ndarray:
        """The ``num`` best-predicted unvisited points that annealing finds, best first."""
        space = self.space
        points = self.chains if self.chains is not None else self._start_points(self.parallel_size)
        scores = self._score(points)
        top_keys: list = []
        top_scores = np.empty(0)
        top_points = np.empty((0, len(space.knobs)), dtype=np.int64)

        def push(pts: np.ndarray, sc: np.ndarray) -> bool:
            nonlocal top_keys, top_scores, top_points
            floor = top_scores.min() if len(top_keys) >= num else -np.inf
            sel = np.nonzero(np.isfinite(sc) & (sc > floor))[0]
            if not len(sel):
                return False
            keys = space.keys(pts[sel]).tolist()
            have = set(top_keys)
            new_k, new_s, new_p = [], [], []
            for i, k in zip(sel, keys):
                if k in self.visited or k in have:
                    continue
                have.add(k)
                new_k.append(k)
                new_s.append(sc[i])
                new_p.append(pts[i])
            if not new_k:
                return False
            keys_all = top_keys + new_k
            s_all = np.concatenate([top_scores, new_s])
            p_all = np.concatenate([top_points, np.array(new_p)])
            keep = np.argsort(-s_all, kind="stable")[:num]
            changed = any(i >= len(top_keys) for i in keep)
            top_keys = [keys_all[i] for i in keep]
            top_scores, top_points = s_all[keep], p_all[keep]
            return changed

        push(points, scores)
        t, cool = self.temp[0], (self.temp[0] - self.temp[1]) / (self.n_iter + 1)
        k = last = 0
        with np.errstate(invalid="ignore", over="ignore"):
            while k < self.n_iter and k < last + self.early_stop:
                new = space.random_walk(points, self.rng)
                new_scores = self._score(new)
                prob = np.exp(np.minimum((new_scores - scores) / (t + 1e-5), 1))
                accept = self.rng.random(len(points)) < np.nan_to_num(prob, nan=0.0)
                points[accept] = new[accept]
                scores[accept] = new_scores[accept]
                if push(new, new_scores):
                    last = k
                k += 1
                t -= cool
        self.chains = points
        # AutoTVM keeps only candidates predicted >= 0 (meant to drop its heap's -inf placeholders,
        # it drops low-scored real candidates too); the plan's remainder becomes random picks
        return top_points[top_scores >= 0]


@register
class XGBValidityTuner(XGBTuner):
    name = "xgb-validity"
    summary = ("the method: xgb with a hardware-aware validity model (rules from the architecture): valid-only "
               "initial batch and proposals; invalid points kept out of training")
    validity = "rules"
    feed_invalid = False

    def __init__(self, space, seed=0, batch_size=64, validity=None):
        if validity is None:
            raise AccelmapError("tuner 'xgb-validity' needs the target's validity rules", field="--tuner")
        super().__init__(space, seed, batch_size, validity)
        self.pool: np.ndarray | None = None
        if space.size <= ENUMERATION_LIMIT:
            pts = space.enumerate()
            self.pool = self.space.keys(pts[validity.predict(pts)])
            if not len(self.pool):
                raise AccelmapError(f"the validity rules predict no valid configuration among the {space.size:,} of "
                                    f"{space.name}; nothing to tune", field="--tuner")
            self._perm_pool = self.pool[self.rng.permutation(len(self.pool))]
            self._pool_pt = 0
            self._pool_set = set(self.pool.tolist())
            self._pool_seen = 0

    def _mark(self, points: np.ndarray) -> None:
        for k in self.space.keys(points).tolist():
            if k not in self.visited:
                self.visited.add(k)
                if self.pool is not None and k in self._pool_set:
                    self._pool_seen += 1

    def has_next(self) -> bool:
        if self.pool is not None:
            return self._pool_seen < len(self.pool)
        return super().has_next()

    def stop_reason(self) -> str:
        if self.pool is not None:
            return (f"space exhausted: all {len(self.pool):,} configurations the validity rules allow were measured "
                    f"(the rules call the other {self.space.size - len(self.pool):,} of {self.space.size:,} invalid)")
        return "no untried configuration the validity rules allow was found by sampling"

    def _random_pick(self) -> np.ndarray | None:
        if self.pool is None:  # too large to enumerate: rejection sampling through the rules
            for _ in range(64):
                cand = self._unvisited(256)
                if not len(cand):
                    return None
                ok = self.validity_model.predict(cand)
                if ok.any():
                    return cand[int(np.argmax(ok))]
                self._mark_rejected(cand)
            return None
        while self._pool_pt < len(self._perm_pool) and int(self._perm_pool[self._pool_pt]) in self.visited:
            self._pool_pt += 1
        if self._pool_pt >= len(self._perm_pool):
            return None
        return self.space.points([int(self._perm_pool[self._pool_pt])])[0]

    def _fallback_pick(self, cand: np.ndarray) -> np.ndarray | None:
        return None  # never propose a configuration the rules call invalid

    def _mark_rejected(self, cand: np.ndarray) -> None:
        """Predicted-invalid candidates are never proposed: skip them from now on (they are
        not measured, so they do not count against the budget)."""
        self.visited.update(self.space.keys(cand).tolist())

    def _start_points(self, n: int) -> np.ndarray:
        if self.pool is None:
            return super()._start_points(n)
        return self.space.points(self.pool[self.rng.integers(0, len(self.pool), n)])


@register
class XGBValidityLearnedTuner(XGBTuner):
    name = "xgb-validity-learned"
    summary = ("xgb with a validity classifier learned from the measurements (unknown rules): random first "
               "batch, then predicted-valid proposals; invalid points kept out of training")
    feed_invalid = False

    def __init__(self, space, seed=0, batch_size=64, validity=None):
        from accelmap.tune.validity import LearnedValidity

        super().__init__(space, seed, batch_size, LearnedValidity(space, seed))

    def _observe(self) -> None:
        self.validity_model.fit(np.array(self.measured_points), np.array(self.measured_valid))
