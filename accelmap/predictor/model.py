"""The DCP cost predictor: an MLP from (layer code, hardware code, dataflow code) to
log(cycles / bound) and log(energy / bound).

An MLP suffices: codes are fixed-length and already in log space; the bounds normalization
leaves the network to learn mapping efficiency. Inputs are standardized with the training
set's statistics (stored in the checkpoint, with the code layout and the hardware ranges seen
in training). Checkpoints hold only tensors and plain values and load with
``weights_only=True``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from accelmap.errors import AccelmapError
from accelmap.predictor.codes import CodeLayout

FORMAT = "accelmap-dcp-predictor-1"


def default_checkpoint() -> Path:
    return Path(str(resources.files("accelmap") / "data" / "dcp" / "predictor.pt"))


class CostPredictor(nn.Module):
    def __init__(self, layout: CodeLayout, hidden: int = 256, depth: int = 3):
        super().__init__()
        self.layout = layout
        n_in = layout.layer_size + layout.hardware_size + layout.dataflow_size
        mods: list[nn.Module] = []
        w = n_in
        for _ in range(depth):
            mods += [nn.Linear(w, hidden), nn.SiLU()]
            w = hidden
        mods.append(nn.Linear(w, 2))
        self.net = nn.Sequential(*mods)
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        self.register_buffer("hw_low", torch.full((layout.hardware_size,), -math.inf))
        self.register_buffer("hw_high", torch.full((layout.hardware_size,), math.inf))
        self.hidden, self.depth = hidden, depth

    def forward(self, layer: torch.Tensor, hw: torch.Tensor, dataflow: torch.Tensor) -> torch.Tensor:
        """layer [N, C_w] or [C_w], hw [N, C_h] or [C_h], dataflow [N, C_m] -> [N, 2]
        (log cycles / bound, log energy / bound)."""
        N = dataflow.shape[0]
        x = torch.cat([layer.expand(N, -1), hw.expand(N, -1), dataflow], 1)
        return self.net((x - self.mean) / self.std)

    def check_hardware(self, hw: torch.Tensor, source: str = "<hardware>") -> list[str]:
        """Names of hardware-code entries outside the ranges seen in training (a warning: the
        prediction there is extrapolation)."""
        out = (hw < self.hw_low - 1e-6) | (hw > self.hw_high + 1e-6)
        return [str(i) for i in out.nonzero().flatten().tolist()]

    # ---- checkpoints -------------------------------------------------------------------------------
    def save(self, path: Path, meta: dict) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": FORMAT, "layout": self.layout.to_dict(), "hidden": self.hidden, "depth": self.depth,
                    "state": self.state_dict(), "meta": meta}, path)

    @staticmethod
    def load(path: Path | None = None) -> "CostPredictor":
        path = Path(path) if path else default_checkpoint()
        if not path.exists():
            raise AccelmapError("predictor checkpoint not found", file=str(path))
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a corrupted or foreign file: say so, never guess
            raise AccelmapError(f"not a readable predictor checkpoint ({type(exc).__name__})", file=str(path)) from None
        if not isinstance(ck, dict) or ck.get("format") != FORMAT:
            raise AccelmapError(f"not an accelmap DCP predictor checkpoint; expected format {FORMAT}",
                                file=str(path), field="format")
        layout = CodeLayout.from_dict(ck["layout"])
        m = CostPredictor(layout, ck["hidden"], ck["depth"])
        try:
            m.load_state_dict(ck["state"])
        except RuntimeError as exc:
            raise AccelmapError(f"weights do not match the code layout: {str(exc).splitlines()[0]}", file=str(path),
                                field="state") from None
        m.meta = ck.get("meta", {})
        m.source = str(path)
        return m.eval()


@dataclass(frozen=True)
class TrainReport:
    epochs: int
    seconds: float
    train_rows: int
    val_rows: int
    val_mae: tuple[float, float]  # mean absolute error of log cycles, log energy (natural log)
    spearman_edp: float  # mean over held-out (layer, hardware) pairs of the rank correlation of EDP
    kendall_edp: float
    spearman_pooled: float


def _rank(x: torch.Tensor) -> torch.Tensor:
    r = torch.empty_like(x)
    r[torch.argsort(x)] = torch.arange(len(x), dtype=x.dtype)
    return r


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = _rank(a.double()), _rank(b.double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp(min=1e-12))


def kendall(a: torch.Tensor, b: torch.Tensor, n: int = 400) -> float:
    """Kendall's tau-a on (up to) n points."""
    a, b = a[:n].double(), b[:n].double()
    s = torch.sign(a[:, None] - a[None]) * torch.sign(b[:, None] - b[None])
    k = len(a)
    return float(s.sum() / max(1, k * (k - 1)))


def train(data: dict, val_layers: set[int], epochs: int, seed: int, hidden: int = 256, depth: int = 3,
          lr: float = 2e-3, batch: int = 2048, progress: Callable[[int, float], None] | None = None,
          exclude_hw: set[int] = frozenset()) -> tuple[CostPredictor, TrainReport]:
    """Fit on pairs whose layer is not in ``val_layers``; report on the held-out layers' pairs."""
    torch.manual_seed(seed)
    layout: CodeLayout = data["layout"]
    pairs = data["pairs"].long()
    rp = data["row_pair"].long()
    is_val_pair = torch.tensor([int(li) in val_layers for li, _ in pairs.tolist()])
    is_ex_pair = torch.tensor([int(hi) in exclude_hw for _, hi in pairs.tolist()])
    val_rows = is_val_pair[rp]
    train_rows = ~val_rows & ~is_ex_pair[rp]
    X_l = data["layer_codes"].float()[pairs[:, 0]]  # per pair
    X_h = data["hw_codes"].float()[pairs[:, 1]]
    codes = data["codes"].float()
    y = data["y"].float()
    model = CostPredictor(layout, hidden, depth)
    tr = train_rows.nonzero().flatten()
    with torch.no_grad():
        sample = tr[torch.randperm(len(tr))[:200_000]]
        xs = torch.cat([X_l[rp[sample]], X_h[rp[sample]], codes[sample]], 1)
        model.mean.copy_(xs.mean(0))
        model.std.copy_(xs.std(0).clamp(min=1e-3))
        hw_seen = X_h[~is_ex_pair]
        model.hw_low.copy_(hw_seen.min(0).values)
        model.hw_high.copy_(hw_seen.max(0).values)
    if not len(tr):
        raise AccelmapError("no training rows: every layer is held out or excluded", field="--val-frac")
    batch = min(batch, len(tr))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-5)
    steps = epochs * max(1, len(tr) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    t0 = time.perf_counter()
    model.train()
    step = 0
    for ep in range(epochs):
        perm = tr[torch.randperm(len(tr))]
        for i in range(0, len(perm) - batch + 1, batch):
            idx = perm[i : i + batch]
            pred = model(X_l[rp[idx]], X_h[rp[idx]], codes[idx])
            loss = nn.functional.smooth_l1_loss(pred, y[idx], beta=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        if progress:
            progress(ep + 1, float(loss.detach()))
    model.eval()
    report = evaluate(model, data, val_rows, X_l, X_h)
    return model, TrainReport(epochs, time.perf_counter() - t0, int(train_rows.sum()), int(val_rows.sum()),
                              *report)


def evaluate(model: CostPredictor, data: dict, rows: torch.Tensor, X_l=None, X_h=None):
    """(mae, spearman per pair (mean), kendall per pair (mean), spearman pooled) on ``rows``."""
    pairs = data["pairs"].long()
    rp = data["row_pair"].long()
    X_l = data["layer_codes"].float()[pairs[:, 0]] if X_l is None else X_l
    X_h = data["hw_codes"].float()[pairs[:, 1]] if X_h is None else X_h
    idx = rows.nonzero().flatten()
    if not len(idx):
        return (math.nan, math.nan), math.nan, math.nan, math.nan
    with torch.no_grad():
        pred = torch.cat([model(X_l[rp[j]], X_h[rp[j]], data["codes"][j].float()) for j in idx.split(65536)])
    y = data["y"][idx].float()
    mae = (pred - y).abs().mean(0)
    pe, te = pred.sum(1), y.sum(1)  # log EDP relative to its bound
    sp, kd = [], []
    for p in rp[idx].unique().tolist():
        m = rp[idx] == p
        if m.sum() >= 20:
            sp.append(spearman(pe[m], te[m]))
            kd.append(kendall(pe[m], te[m]))
    return ((float(mae[0]), float(mae[1])), sum(sp) / len(sp), sum(kd) / len(kd), spearman(pe, te))


def warn_outside(model: CostPredictor, hw_code: torch.Tensor, what: str) -> None:
    bad = model.check_hardware(hw_code)
    if bad:
        warnings.warn(f"{what}: hardware code entries {bad} lie outside the ranges the predictor was trained on; "
                      f"its predictions there are extrapolation", stacklevel=3)


def finetune(model: CostPredictor, layer: torch.Tensor, hw: torch.Tensor, codes: torch.Tensor, y: torch.Tensor,
             anchor_layer: torch.Tensor, anchor_codes: torch.Tensor, steps: int = 300, lr: float = 3e-4,
             seed: int = 0) -> CostPredictor:
    """Few-shot adaptation to new hardware: fit the true costs ``y`` [N, 2] of ``codes`` (rows
    with their ``layer`` [N, C_w] codes, all on ``hw`` [C_h]) while keeping the predictions on
    unlabelled ``anchor`` codes of the same hardware close to the original model's (so a
    hundred samples shift the predictor without erasing what it knew)."""
    import copy

    torch.manual_seed(seed)
    new = copy.deepcopy(model).train()
    with torch.no_grad():
        target_anchor = model(anchor_layer, hw, anchor_codes)
    opt = torch.optim.Adam(new.net.parameters(), lr=lr)
    for _ in range(steps):
        loss = nn.functional.smooth_l1_loss(new(layer, hw, codes), y, beta=0.1)
        loss = loss + 0.5 * nn.functional.smooth_l1_loss(new(anchor_layer, hw, anchor_codes), target_anchor, beta=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    new.eval()
    new.meta = dict(getattr(model, "meta", {}), finetuned_samples=int(len(y)))
    return new
