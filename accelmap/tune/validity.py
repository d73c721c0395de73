"""Validity models: which configurations will run, predicted before measuring them.

* :class:`RuleValidity` is the hardware-aware model of the method: rules derived from the
  architecture description. For the VTA template: each tensor's tile (the box its projection
  spans for the tile's loop extents, :meth:`Workload.tensor_size`), times the virtual threads,
  in whole buffer entries (block-size words: the alignment of every on-chip allocation) against
  its buffer's capacity; micro-ops of one region against the micro-op buffer; the schedule's
  virtual-thread splits and the accumulator dependency distance. For a general mapping space:
  Timeloop's legality (tiles within each level's capacity, spatial factors within the fanout).
  It is written apart from the VTA model of :mod:`accelmap.tune.vta` (which plays the hardware), and
  the two are checked against each other on every configuration of small spaces.
* :class:`LearnedValidity` is for hardware whose rules are unknown: an XGBoost classifier on the
  knob features, trained on the valid/invalid labels of the measurements so far.

Both answer ``predict(points) -> [n] bool`` (True: predicted valid).
"""

from __future__ import annotations

import numpy as np

from accelmap.errors import AccelmapError
from accelmap.tune.knobs import KnobSpace
from accelmap.workload.workload import conv2d


class RuleValidity:
    """Rules from the architecture description for a task's knob space."""

    name = "rules"

    def __init__(self, space: KnobSpace, arch):
        self.space, self.arch = space, arch
        self.template = space.meta["template"]
        if self.template == "vta_conv2d":
            from accelmap.tune.vta import VTAConfig

            self.cfg = VTAConfig.from_arch(arch)
            conv = space.meta["conv"]
            # the layer as Timeloop sees it; channels in elements, P/R along the width
            self.layer = conv2d(conv.name, C=conv.C, K=conv.K, P=conv.W, Q=conv.H, R=conv.kw, S=conv.kh, N=conv.N,
                                stride=(conv.sw, conv.sh))
            self.buffers = {}
            for tensor, level in (("Inputs", "InputBuffer"), ("Weights", "WeightBuffer"), ("Outputs", "AccBuffer")):
                lv = arch.levels[arch.level_index(level)]
                self.buffers[tensor] = (lv.capacity, lv.block_size)

    def reasons(self, points: np.ndarray) -> list[str | None]:
        """The predicted error code of each point (None: predicted valid)."""
        points = np.asarray(points, dtype=np.int64).reshape(-1, len(self.space.knobs))
        if self.template != "vta_conv2d":
            from accelmap.tune.knobs import mapping_genomes
            from accelmap.tune.measurer import ModelMeasurer

            reason = self.space.meta["mapping_space"].evaluate(mapping_genomes(self.space, points)).reason.tolist()
            return [None if r == 0 else ModelMeasurer.MAPPING_ERRORS.get(r, "compile_error") for r in reason]
        split, buffers, uops = self._vta(points)
        return [("unsupported_split" if s else "buffer_overflow" if b else "uop_overflow" if u else None)
                for s, b, u in zip(split, buffers, uops)]

    def predict(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.int64).reshape(-1, len(self.space.knobs))
        if self.template != "vta_conv2d":
            from accelmap.tune.knobs import mapping_genomes

            return self.space.meta["mapping_space"].evaluate(mapping_genomes(self.space, points)).valid.numpy()
        split, buffers, uops = self._vta(points)
        return ~(split | buffers | uops)

    def _vta(self, points: np.ndarray):
        """(bad split, buffer overflow, micro-op overflow), each [n] bool."""
        k = {kn.name: np.array(kn.options, dtype=np.int64)[points[:, c]] for c, kn in enumerate(self.space.knobs)}
        conv, cfg = self.space.meta["conv"], self.cfg
        b, h, w, ci, co = k["tile_b"], k["tile_h"], k["tile_w"], k["tile_ci"], k["tile_co"]
        threads = k["oc_nthread"] * k["h_nthread"]
        # schedule: virtual threads split the outer co / h loops evenly
        split = ((conv.kb // co) % k["oc_nthread"] != 0) | ((conv.H // h) % k["h_nthread"] != 0)
        # accumulator dependency: entries written between two writes of one entry, i.e. the
        # output loops (co1, h1; and w1 when ci1 is the innermost reduction) inside the
        # innermost reduction loop that iterates
        if conv.kh * conv.kw > 1:
            period = co * h
            reduces = np.ones_like(co, dtype=bool)
        else:
            period = w * co * h
            reduces = ci > 1
        split |= reduces & (period < cfg.acc_dep_distance)
        # buffers: tile boxes of the tensors' projections, whole entries, one copy per thread
        over = np.zeros(len(points), dtype=bool)
        block = conv.block
        extents = {"N": b, "C": ci * block, "K": co * block, "P": w, "Q": h, "R": conv.kw, "S": conv.kh}
        for tensor, (capacity, entry) in self.buffers.items():
            words = self._tile_words(tensor, extents)
            over |= -(-words // entry) * entry * threads > capacity
        # micro-ops: per kernel, the loops inside the two outermost iterating ones (folded into
        # the instruction's counters), for the GEMM, the reset and the requantization passes
        one = np.ones_like(b)
        gemm = self._inner_product([b, ci, w, one * conv.kw, one * conv.kh, co, h])
        reset = self._inner_product([b, w, co, h])
        alu = self._inner_product([b, co, h, w])
        uops = (gemm + reset + cfg.alu_ops * alu) * threads > cfg.uop_capacity
        return split, over, uops

    def _tile_words(self, tensor: str, extents: dict) -> np.ndarray:
        t = self.layer.tensor(tensor)
        words = np.ones_like(extents["N"])
        for rank in t.ranks:
            words = words * (sum(c * (extents[d] - 1) for d, c in rank) + 1)
        return words

    @staticmethod
    def _inner_product(loops: list[np.ndarray]) -> np.ndarray:
        """Product of the extents left after dropping the two outermost loops that iterate."""
        total = np.prod(np.stack(loops, 1), 1)
        folded = np.ones_like(total)
        count = np.zeros_like(total)
        for ext in loops:
            take = (ext > 1) & (count < 2)
            folded = np.where(take, folded * ext, folded)
            count = count + take
        return total // folded

    def valid_points(self, limit: int = 2_000_000) -> np.ndarray:
        """Every predicted-valid point of a space small enough to enumerate."""
        if self.space.size > limit:
            raise AccelmapError(f"knob space of {self.space.size:,} configurations is too large to enumerate")
        pts = self.space.enumerate()
        return pts[self.predict(pts)]


class LearnedValidity:
    """An XGBoost classifier of validity on knob features, refit on every labelled batch.
    Until it has seen both classes it predicts everything valid."""

    name = "learned"

    def __init__(self, space: KnobSpace, seed: int = 0, threshold: float = 0.5):
        self.space, self.seed, self.threshold = space, seed, threshold
        self.booster = None

    def fit(self, points: np.ndarray, valid: np.ndarray) -> None:
        import xgboost as xgb

        valid = np.asarray(valid, dtype=bool)
        if valid.all() or not valid.any():
            self.booster = None  # one class only: nothing to learn a boundary from
            return
        params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "min_child_weight": 1,
                  "nthread": 1, "seed": self.seed, "eval_metric": "logloss"}
        d = xgb.DMatrix(self.space.features(points), label=valid.astype(np.float32))
        self.booster = xgb.train(params, d, num_boost_round=60)

    def probability(self, points: np.ndarray) -> np.ndarray:
        if self.booster is None:
            return np.ones(len(points))
        return self.booster.inplace_predict(self.space.features(points))

    def predict(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.int64).reshape(-1, len(self.space.knobs))
        if self.booster is None:
            return np.ones(len(points), dtype=bool)  # no evidence of invalidity yet
        return self.probability(points) >= self.threshold
