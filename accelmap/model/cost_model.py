"""The batched, differentiable analytical cost model, faithful to Timeloop v3 + Accelergy.

One call evaluates a :class:`~accelmap.mapping.mapping.MappingBatch` of B mappings. Everything that
depends only on the workload and the architecture (projection coefficients, energies,
capacities, fanouts) is turned into tensors once, in :class:`CostModel.__init__`; the call is
pure tensor math over the batch with small static loops over levels.

How counts follow Timeloop (see shared/reference/timeloop/README.md and Timeloop's nest
analysis; the numbers below are re-derived, not copied):

* A level's tile of a tensor is the axis-aligned box spanned by all loops at and inside the
  level (its own temporal and spatial loops included).
* Fills come from differencing consecutive tiles. Timeloop extrapolates every loop from its
  first two iterations (#0 with weight 1, #1 with weight n-1), and it discards the previous
  tile whenever the tile's translation differs from the previous translation. For the
  innermost non-trivial loop m above a level this gives: a transition of m costs the
  sliding-window delta of m's translation; a transition of an outer loop j costs that same
  delta if j's translation (j advances, loops inside it go back from index 1 to 0) equals
  m's, and the whole tile otherwise.
* A parent's reads (and, for outputs, its updates) are the union of its children's deltas
  at each step: data that several children need is read once (multicast), partial sums of
  children that differ only in reduction dims are reduced on the way (spatial reduction).
* Outputs: updates = content accesses, reads = updates - partition size (first writes need
  no read), fills = deltas - partition size.
* Energy: per level and tensor, instances x (ceil(reads/B)*E_read + ceil(fills/B)*E_write +
  ceil(updates/B)*E_write), plus MACs x E_mac. Cycles: max over levels of compute cycles and
  accesses / bandwidth.
* Clusters (Timeloop v3 and v4): a level whose row is shared by ``cluster_size`` instances
  charges each access once per utilized cluster, min(utilized instances, instances / cluster
  size), instead of per utilized instance (Timeloop assumes the used instances spread over all
  clusters). Leakage (Timeloop v4 only; v3 has none): per level, the ERT's leak energy x cycles
  x utilized instances (none for the MACs), split equally among the tensors.

Rules found by differential testing against timeloop-model v3.0.3 (``bench/timeloop_diff.py``,
random architectures, layers and mappings; each rule with the case that showed it):

* MAC operands are never differenced: a MAC takes its operand at every step (a point is not a
  tile whose overlap with the previous one is kept). What MACs reuse, they take over links
  from mesh neighbours (below). Case: DRAM to 9 MACs (3x3) with C=2 on X and P=2 on Y under
  temporal Q=6 (innermost), S, K, R, P: DRAM Weight reads 46,080 = 2 per step, no link
  transfers (rand2026_14 layer0 mapping 3; the former rule, MACs keep an operand the
  innermost spatial loop leaves unindexed, gave 7,680).
* Link transfers, exactly as Timeloop finds them. Only element 0 of a fanout is simulated;
  element i's delta is element 0's translated by i's tile offset. The elements sit on the mesh
  by their index, mixed radix over the spatial loops (X loops fastest, each axis in its loop
  order), cut into rows of H = max(mesh X, product of the X loops) -- so where the mapping
  does not fill a row, neighbours are not the loops' +-1 (rows of 3 MACs holding C=2 x P=2
  put (c=0, p=1) beside (c=1, p=0), in the case above). At a step, element i takes its delta
  from a neighbour (left, right, up or down) that held the same delta one step before: the
  two deltas must have the same shape (both m-strips, or both whole tiles, with the
  differencing rule above; MAC points always) and the neighbour's tile must be offset by the
  step's translation. Timeloop then uses the links only if they cut the parent's accesses
  (the distinct deltas among the elements left over are fewer than among all). The count is
  over the elements: ``kernel._link_counts`` (the tensor model takes these terms from it).
  Case: 2x2 spatial S=2 (X) x N=2 (Y) on a 3x3 mesh under temporal Q=5: one of the four PEs
  finds its neighbour's Input, 4 link transfers (rand2026_101 layer0 mapping 4).
* Links at the fanout right above a child keeper b (or the MACs) save parent accesses there,
  however many fanouts separate b from its parent keeper; a fanout further up (with bypassing
  levels between it and b) counts links among the tiles of the level right below it, and
  Timeloop keeps them only as a change of that fanout's multicast factor: N x (distinct deltas
  left over) / (deltas the children take from the parent), summed over the run (its masking
  rescales the parent's accesses by the child's). Cases: Outputs from DRAM through a 3x3
  fanout and a PE buffer that bypasses them to 2 MACs (1x2): the MACs forward partial sums,
  DRAM Output updates 2,688, reads 0 (rand2026_9 layer2 mapping 7); Inputs from
  DRAM through a 4x4 fanout (P=2 on X, R=3 on Y) and two bypassing levels to 2 MACs: DRAM
  reads 416, where the plain multicast count gives 384 (rand2026_43 layer3 mapping 4).
* Link transfers leave a child's fills from its parent; Timeloop charges their read and fill
  spread over all instances of the level above (it divides by the child level's replication,
  not its fanout). Case: P=2 spread from a buffer kept by 4 PEs to 8 child buffers, 72
  transfers per child: fills 216 - 72 + 18, reads 216 + 18.
* A read-only tensor's fills are truncated to a whole number, not rounded (Timeloop stores
  parent share + link fills, a fraction, in an integer). Case: 4 + 4/8 = 4.5 Input fills
  print as 4 (rand2026_101 layer0 mapping 4).
* Multicast across several fanout levels: each level counts its own distinct child tiles
  (those of the level right below it) and the counts multiply, instead of the distinct points
  of all the spread loops together. Case: Inputs (W = R + 2P) kept in DRAM and in a per-PE
  buffer with P=2 spread at the global buffer and R=3 one level down: 2 x 3 = 6 copies per
  step (DRAM reads 1,296), not the 5 distinct offsets of r + 2p (1,080).
* Cycles. Timeloop throttles a level in its own float steps: demand = sum over tensors, in
  problem order, of accesses / compute cycles; slowdown = bandwidth / demand where the demand
  exceeds it; cycles = ceil(compute cycles / slowdown). Case: 14 compute cycles, 116 DRAM reads
  at 4 words/cycle: 14 / (4 / (116/14)) = 29.000000000000004, so 30 cycles, not 29.

Residual loops (Timeloop v3's imperfect factors ``P=8,5``, issue 16; the rules, each checked
with timeloop-model, are in /work/notes/imperfect_semantics.md). A batch with residual ends
(``MappingBatch.has_residuals``) goes to :meth:`CostModel._evaluate_residual` whatever the
backend (``__call__`` decides, in one place: the kernel and the perfect path model perfect
nests only); a batch without keeps the code path above, unchanged. It is exact on every
compared record: 2,099 of ``tests/data/timeloop_diff_imperfect/records.jsonl.gz`` (50
architectures) and 1,694 of ``records_seed17.jsonl.gz`` (40 more), every count, energy and cycle
equal. What it models:

* Closed forms. Compute cycles are the product of every temporal *end* (residual ends never
  shorten them; the outermost end counts though it does not enter the bound), then bandwidth
  throttling as above. Case: ``DRAM P=4`` over ``PE P=4,1`` on P=13: 16 cycles. The MACs
  Timeloop counts and charges are floor(body0 / V x product of all spatial ends), body0 the body
  executions element 0 of every non-MAC fan-out sees, V the MAC fan-out's elements that ever
  run. Case: P=7 as ``DRAM P=2`` over ``spatial P=4,3``: 8 MACs. Tiles (and the capacity check):
  per dim the full extent when a loop of the dim above has a residual end > 1, else the
  residual chain's. Case: ``DRAM P=1`` over ``PE P=8,5``, P=5: the PE holds 1 + 5 + 5 = 11 words.
  The bound rule replaces the product check (``factor_error`` is log covered / bound).
* Access counts come from a trace of element 0 (``_element0_deltas``), per level k and the tile
  of level k + 1, in Timeloop's order. A loop runs its residual end when every loop of its dim
  outside it is on its last iteration. An imperfect nest (any loop with r != f) runs each loop's
  iterations #0, #1 (standing for n - 3), #n-2 and #last; a perfect one #0 and #1 (for n - 1).
  Right above a keeper's tile, with no fan-out between, Timeloop counts #1's delta again in
  place of #n-2's. A tile is differenced with the previous one while the translation (the
  centroids' difference, rounded) stays the same, else it moves whole. Cases: P=12, R=3 as
  ``DRAM P=3,2`` over ``GLB P=3`` over ``PE P=2 R=3``: 14 PE Input fills (16 with ``DRAM P=2``);
  ``PE P=3,1 R=3`` under ``DRAM P=3``: 11 fills (5 + 3 + the whole last tile).
* Fan-outs: only element 0 is simulated; every element that runs (f, or r when the dim is on its
  last iteration outside the fan-out) takes element 0's delta, translated. A level's accesses
  count each distinct delta once (multicast), its weighted accesses every element's; links: an
  element whose delta equals a mesh neighbour's delta one call before takes it from there, and
  Timeloop keeps the links only where they cut the accesses. The MAC fan-out's elements are all
  simulated, their operand points never differenced. Case: P=9 as ``DRAM P=2`` over ``spatial
  P=3,2`` over ``PE P=2,1``: GLB Input reads 10 = 6 + 2 x 2.
* Then Timeloop's tiling rules on these statistics: a child's fills are the share of the level
  right above it (weighted accesses / logical fan-out; truncated for read-only tensors, rounded
  for outputs), link transfers a read and a fill spread over the child level's instances; a
  bypassing level passes its content up by scaling the level above to content x fan-out /
  weighted accesses (case: Outputs through a bypassing level under ``spatial R=2,1``, DRAM
  updates 160 = 2 x 120 x 2/3); partition sizes chain from DRAM's tile as parent x tile / the
  tile a fan-out's elements span, in integers, over bypassing levels too.
* Timeloop stores a negative output fill, round(share - partition), in an unsigned integer
  (it prints about 1.8e19; 34 records); accelmap clamps it at 0 and those records are left out.

Shapes: B batch, L storage levels (0 = outermost), D loop dims, T tensors, R ranks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from accelmap.arch.architecture import Architecture
from accelmap.arch.hardware import Hardware
from accelmap.errors import AccelmapError
from accelmap.mapping.mapping import MappingBatch
from accelmap.model.status import BAD_CAPACITY, BAD_FACTORS, BAD_FANOUT, BAD_KEEP, VALID
from accelmap.workload.workload import Workload


def _clusters(hw: Hardware) -> torch.Tensor:
    """Clusters per level, instances / cluster size ([L] or [B, L]); inf where the cluster is
    one instance, so that utilized instances are charged as they are."""
    return torch.where(hw.cluster_size > 1.5, hw.instances / hw.cluster_size, torch.full_like(hw.instances, math.inf))


def _rows(x: torch.Tensor, base_dim: int) -> torch.Tensor:
    """A hardware field with a leading batch dimension (size 1 when shared by all rows)."""
    return x if x.dim() > base_dim else x[None]


@dataclass(frozen=True)
class Costs:
    """Results for a batch. Per-mapping fields are [B]; breakdowns are [B, L, T] per instance.

    energy: pJ; cycles; edp: pJ x cycles; power: mW at the architecture's clock; area: um^2.
    energy_by_level: [B, L+1] pJ, the last column is the MACs. reason: [B] int (0 = valid).
    reads/fills/updates: [B, L, T] scalar accesses per instance; tile: [B, L, T] words kept.
    instances: [B, L] utilized instances; capacity_excess: [B, L] words over capacity (<= 0 ok);
    fanout_excess: [B, L, 2] log of spatial product over fanout (<= 0 ok);
    factor_error: [B, D] log of factor product over bound (0 ok).
    """

    energy: torch.Tensor
    cycles: torch.Tensor
    edp: torch.Tensor
    utilization: torch.Tensor
    power: torch.Tensor
    area: torch.Tensor
    valid: torch.Tensor
    reason: torch.Tensor
    energy_by_level: torch.Tensor
    energy_by_level_tensor: torch.Tensor
    reads: torch.Tensor
    fills: torch.Tensor
    updates: torch.Tensor
    tile: torch.Tensor
    instances: torch.Tensor
    compute_cycles: torch.Tensor
    level_cycles: torch.Tensor
    capacity_excess: torch.Tensor
    fanout_excess: torch.Tensor
    factor_error: torch.Tensor

    def __getitem__(self, idx) -> "Costs":
        return Costs(*(getattr(self, f.name)[idx] for f in fields(self)))

    def to(self, device) -> "Costs":
        return Costs(*(getattr(self, f.name).to(device) for f in fields(self)))


@dataclass(frozen=True)
class _Nest:
    """What loop analysis finds for B mappings (T tensors, L levels, D dims), the input of the
    access counts and of energy and cycles."""

    f: torch.Tensor  # [B, L, D] temporal x spatial factor of each dim at each level
    fs: torch.Tensor  # [B, L, D] spatial factor (X x Y)
    full: torch.Tensor  # [B, T, L + 1] tile words of each tensor at each level and at the MAC
    compute_cycles: torch.Tensor  # [B] the product of all temporal factors
    inst: torch.Tensor  # [B, L] instances of each level
    deltas: torch.Tensor  # [B, T, L] words child level b + 1 receives per instance over the run
    content: torch.Tensor  # [B, T, L] accesses a level serves its child keeper, per instance
    part: torch.Tensor  # [B, T, L] partition size: distinct points one instance ever holds
    peer: torch.Tensor  # [B, T, L] words per child taken over links from mesh neighbours
    keep_t: torch.Tensor  # [B, T, L] the level keeps the tensor


class CostModel:
    """Evaluate mappings of ``workload`` on ``arch``. ``dtype`` float64 keeps counts exact."""

    def __init__(self, workload: Workload, arch: Architecture, dtype=torch.float64, device="cpu",
                 backend: str = "auto"):
        """``backend``: "torch" (the tensor model), "kernel" (the compiled scalar kernel, CPU
        only, same counts) or "auto" (the kernel for exact CPU evaluation when numba is there).
        """
        if backend not in ("auto", "torch", "kernel"):
            raise AccelmapError(f"unknown backend '{backend}'; expected auto, torch or kernel")
        self.backend = backend
        self.workload = workload
        self.arch = arch
        self.dtype = dtype
        self.device = torch.device(device)
        D, T, L = len(workload.dims), len(workload.tensors), len(arch.levels)
        R = max(len(t.ranks) for t in workload.tensors)
        self.D, self.T, self.L, self.R = D, T, L, R
        coef = torch.zeros(T, R, D, dtype=torch.float64)
        d1 = torch.zeros(T, R, dtype=torch.int64)
        d2 = torch.zeros(T, R, dtype=torch.int64)
        c1 = torch.zeros(T, R, dtype=torch.float64)
        c2 = torch.zeros(T, R, dtype=torch.float64)
        live = torch.zeros(T, R, dtype=torch.bool)
        # A translation of a tile is compared by one scalar key: ranks packed in mixed radix,
        # radix 2*extent+1 so negative steps fit. Keys are linear in the loop steps, so a
        # loop's key is step * key_coef[t, d].
        key_coef = torch.zeros(T, D, dtype=torch.float64)
        bound = workload.bound
        for ti, t in enumerate(workload.tensors):
            radix = 1.0
            for ri, rank in enumerate(t.ranks):
                if len(rank) > 2:
                    raise AccelmapError(f"tensor {t.name}: a rank with more than two dimensions is not supported")
                live[ti, ri] = True
                for k, (d, c) in enumerate(rank):
                    di = workload.dims.index(d)
                    coef[ti, ri, di] += c
                    key_coef[ti, di] += c * radix
                    (d1 if k == 0 else d2)[ti, ri] = di
                    (c1 if k == 0 else c2)[ti, ri] = c
                radix *= 2 * workload.rank_extent(rank, bound) + 1
            if radix >= 2.0 ** 52:
                raise AccelmapError(f"tensor {t.name} is too large for exact translation keys")
        dev = self.device
        self.coef = coef.to(dev, dtype)
        self.rank_live = live.to(dev)
        self.key_coef = key_coef.to(dev)
        self.rank_d1, self.rank_d2 = d1.to(dev), d2.to(dev)
        self.rank_c1, self.rank_c2 = c1.to(dev, dtype), c2.to(dev, dtype)
        self.read_write = torch.tensor([t.read_write for t in workload.tensors], device=dev)
        self.bounds = torch.tensor(workload.bounds, dtype=dtype, device=dev)
        self.macs = float(workload.macs)
        self.hw = Hardware.from_arch(arch, dtype, dev)
        # Dims of bound 1 never make a non-trivial loop; leaving them out of the flattened
        # loop list shrinks the hot tensors (N=1 in every CNN layer, R=S=1 in pointwise ones).
        self.loop_dims = torch.tensor([i for i, b in enumerate(workload.bounds) if b > 1] or [0], device=dev)
        # fan-out layouts and mesh neighbours of the residual path, kept across calls (a search
        # meets the same fan-outs again); emptied when it grows large
        self._trace_cache: dict = {}

    # ---- public entry points ------------------------------------------------------------------
    def __call__(self, batch: MappingBatch, hw: Hardware | None = None, detail: bool = True,
                 invalid_costs: bool = True, validity_only: bool = False) -> Costs:
        """Evaluate a batch. With ``detail=False`` the kernel backend skips the per-level
        breakdown (reads, fills, tiles, ... are then empty) to save memory traffic in search.
        With ``invalid_costs=False`` it also stops at an invalid mapping's reason, whose energy
        and cycles are then +inf (a search scores it +inf anyway); with ``validity_only`` at
        every mapping's (``valid`` and ``reason`` exact, a valid mapping's energy and cycles
        NaN). Other backends ignore both and compute everything."""
        hw = hw or self.hw
        # The one place that routes a batch: one with residual ends (Timeloop's P=8,5) always goes
        # to the exact residual path, whichever backend was asked for; the compiled kernel and the
        # perfect tensor path count perfect nests only, and a perfect batch never pays for residuals.
        if batch.has_residuals:
            b = batch.to(self.device)
            return self._evaluate_residual(b, hw)
        if self._use_kernel(hw):
            return self._evaluate_kernel(batch, hw, detail, 0 if validity_only else 1 if not invalid_costs else 2)
        b = batch.to(self.device)
        return self._evaluate(b.temporal.to(self.dtype), b.spatial.to(self.dtype), b.order, b.keep,
                              b.spatial_order, hw, True)

    def screen(self, batch: MappingBatch, hw: Hardware | None = None) -> Costs:
        """A fast estimate for searching residual mappings, exact where it is cheap (issue 16).

        The exact residual path traces each mapping in Python (tens of mappings a second); a
        search proposes tens of thousands. Here a batch with residual ends is evaluated as its
        padded nest (each residual end taken as its loop's end: a perfect nest over dims rounded
        up to the product of their ends) on the perfect path (the kernel where it runs), then
        corrected where Timeloop's closed forms are cheap: validity (tiles at their largest
        extent, fan-outs, keeps, the bound rule: the exact path's own checks), compute cycles (the
        product of the temporal ends) and the MACs Timeloop charges. Accesses, hence the rest of
        the energy and bandwidth-bound cycles, are the padded nest's scaled by the share of its
        points the layer has: 2.6% off Timeloop's energy in median on its random residual
        records, closer on a search's draws (``bench/imperfect_screen.py``). Searches rank with
        this and verify their best candidates with the exact model (``MappingSpace.evaluate``).
        A perfect batch is evaluated exactly (without the per-level breakdown)."""
        hw = hw or self.hw
        if not batch.has_residuals:
            return self(batch, hw, detail=False)
        t_pad, s_pad = _padded_ends(batch)
        padded = replace(batch, temporal=t_pad, spatial=s_pad, temporal_residual=None, spatial_residual=None)
        if self._use_kernel(hw):
            c = self._evaluate_kernel(padded, hw, detail=False)
        else:
            b = padded.to(self.device)
            c = self._evaluate(b.temporal.to(self.dtype), b.spatial.to(self.dtype), b.order, b.keep,
                               b.spatial_order, hw, True)
        b = batch.to(self.device)
        dt = self.dtype
        ft, fs2 = b.temporal.to(dt), b.spatial.to(dt)
        rt_, rs2_ = b.residual_ends()
        fs, rs = fs2.prod(-1), rs2_.to(dt).prod(-1)
        Fb, Rb, anyr, _, _, body0, V = self._residual_chains(ft, fs, rt_.to(dt), rs)
        L = ft.shape[1]
        keep = b.keep
        tile = self._tiles(torch.where(anyr, Fb, Rb))[:, :, :L] * keep.permute(0, 2, 1).to(dt)  # [B, T, L]
        cap_excess = tile.sum(1) - _rows(hw.capacity, 1).to(dt)
        reason = _reason(keep, cap_excess, _fanout_excess(fs2, hw), torch.log(Rb[:, 0]) - torch.log(self.bounds.to(dt)),
                         True).to(c.energy.device)
        computes = torch.floor(body0.prod(-1) / V.prod(-1) * fs.flatten(1).prod(-1) + 1e-9).to(c.energy.device)
        mac_e = (self.macs * hw.mac_energy).to(c.energy)
        # the padded nest's accesses shrunk by the share of its points the layer has (a residual
        # end cuts each access count of its loop by about that share)
        covered = t_pad.to(dt).prod(1) * s_pad.to(dt).prod(-1).prod(1)  # [B, D] the padded nest's extent
        share = (self.bounds.to(dt) / covered.to(self.device)).prod(-1).to(c.energy)
        energy = (c.energy - mac_e) * share + computes * hw.mac_energy.to(c.energy)
        cc = ft.prod(-1).prod(-1).to(c.energy)
        cycles = torch.maximum(cc, c.cycles * share)
        util = computes / (cycles * hw.mac_instances.to(c.energy))
        return replace(c, energy=energy, cycles=cycles, edp=energy * cycles, utilization=util, valid=reason == VALID,
                       reason=reason, power=energy / cycles * hw.clock_ghz.to(c.energy))

    def _use_kernel(self, hw: Hardware) -> bool:
        if self.backend == "torch" or self.device.type != "cpu":
            return False  # decided before importing the kernel: numba is slow to import
        from accelmap.model import kernel

        if self.backend == "kernel" and not kernel.HAVE_NUMBA:
            raise AccelmapError("the kernel backend needs numba (pip install numba)")
        return kernel.HAVE_NUMBA and not hw.batched and not any(t.requires_grad for t in vars(hw).values())

    def compile_kernel(self, parallel: bool = False) -> None:
        """Compile the CPU kernel for this model's argument types (or load it from numba's cache)
        without evaluating anything: a one-off step that callers can show on its own. The serial
        kernel always, the multi-threaded one with ``parallel``."""
        if not self._use_kernel(self.hw):
            return
        from accelmap.model import kernel

        L, D, T = len(self.hw.capacity), len(self.bounds), self.coef.shape[0]
        ints = lambda *shape: np.ones(shape, dtype=np.int64)  # noqa: E731
        kernel.compile_for(self.kernel_plan(self.hw), ints(1, L, D), ints(1, L, D, 2), ints(1, L, D), ints(1, L, D),
                           np.ones((1, L, T), dtype=np.bool_), parallel)

    def kernel_plan(self, hw: Hardware):
        """The model's constants as NumPy arrays for :mod:`accelmap.model.kernel` (cached for self.hw)."""
        if hw is self.hw and getattr(self, "_plan", None) is not None:
            return self._plan
        np_ = lambda x: x.detach().cpu().numpy()  # noqa: E731
        f64 = lambda x: np.ascontiguousarray(np_(x), dtype=np.float64)  # noqa: E731
        from accelmap.model.kernel import Plan

        plan = Plan(
            coef=f64(self.coef), rank_live=np_(self.rank_live), key_coef=f64(self.key_coef), d1=np_(self.rank_d1),
            d2=np_(self.rank_d2), c1=f64(self.rank_c1), c2=f64(self.rank_c2), read_write=np_(self.read_write),
            bounds=f64(self.bounds), act=np_(self.loop_dims), capacity=f64(hw.capacity), block=f64(hw.block),
            rbw=f64(hw.read_bw), wbw=f64(hw.write_bw), er=f64(hw.read_energy), ew=f64(hw.write_energy),
            fanout=f64(hw.fanout), mac_energy=float(hw.mac_energy), macs=float(self.macs),
            mac_instances=float(hw.mac_instances), leak=f64(hw.leak_energy), n_clusters=f64(_clusters(hw)))
        if hw is self.hw:
            self._plan = plan
        return plan

    def _evaluate_kernel(self, batch: MappingBatch, hw: Hardware, detail: bool = True, costs: int = 2) -> Costs:
        from accelmap.model import kernel

        plan = self.kernel_plan(hw)
        arr = lambda x: np.ascontiguousarray(x.detach().cpu().numpy())  # noqa: E731
        out = kernel.evaluate(plan, arr(batch.temporal), arr(batch.spatial), arr(batch.order), arr(batch.spatial_order),
                              arr(batch.keep), detail, costs=costs)
        if not detail:
            out = {k: (v if v.shape[0] == len(batch) else v[:0]) for k, v in out.items()}
        t = {k: torch.from_numpy(v).to(self.dtype) if v.dtype == np.float64 else torch.from_numpy(v)
             for k, v in out.items()}
        energy, cycles = t["energy"], t["cycles"]
        area = hw.total_area.to(self.dtype).expand(len(batch))
        return Costs(energy=energy, cycles=cycles, edp=energy * cycles, utilization=self.macs / (cycles * float(hw.mac_instances)),
                     power=energy / cycles * float(hw.clock_ghz), area=area, valid=t["reason"] == VALID,
                     reason=t["reason"], energy_by_level=t["energy_by_level"],
                     energy_by_level_tensor=t["energy_by_level_tensor"], reads=t["reads"], fills=t["fills"],
                     updates=t["updates"], tile=t["tile"], instances=t["instances"],
                     compute_cycles=t["compute_cycles"], level_cycles=t["level_cycles"],
                     capacity_excess=t["tile"].sum(2) - hw.capacity.to(self.dtype)[None] if detail else t["tile"][:, :, 0],
                     fanout_excess=t["fanout_excess"], factor_error=t["factor_error"])

    def relaxed(self, log_temporal: torch.Tensor, log_spatial: torch.Tensor, order: torch.Tensor,
                keep: torch.Tensor, hw: Hardware | None = None, spatial_order: torch.Tensor | None = None) -> Costs:
        """Continuous entry point: log-space factors [B, L, D] and [B, L, D, 2].

        Differentiable in the factors and in every tensor of ``hw`` (capacities, energies,
        fanouts, areas). No rounding to blocks or cycles, so objectives are smooth; the
        reuse structure (which loops are trivial, which translations coincide) is piecewise
        constant and carries no gradient.
        """
        order = order.to(self.device)
        if spatial_order is None:
            spatial_order = MappingBatch.default_spatial_order(log_spatial[..., 0] > math.log(1.5))
        return self._evaluate(log_temporal.exp(), log_spatial.exp(), order, keep.to(self.device),
                              spatial_order.to(self.device), hw or self.hw, False)

    # ---- the model: loop analysis -> access counts -> energy and cycles, in Timeloop's order ----
    def _evaluate(self, ft: torch.Tensor, fs2: torch.Tensor, order: torch.Tensor, keep: torch.Tensor,
                  sorder: torch.Tensor, hw: Hardware, exact: bool) -> Costs:
        nest = self._loop_analysis(ft, fs2, order, keep, sorder, hw)
        reads, fills, updates, tile = self._access_counts(nest, exact)
        return self._energy_and_cycles(nest, reads, fills, updates, tile, fs2, keep, hw, exact)

    def _loop_analysis(self, ft: torch.Tensor, fs2: torch.Tensor, order: torch.Tensor, keep: torch.Tensor,
                       sorder: torch.Tensor, hw: Hardware) -> _Nest:
        """Tiles, iterations, the deltas each child receives, multicast and link transfers of B
        mappings: ft [B, L, D] temporal factors, fs2 [B, L, D, 2] spatial (X, Y), order and
        sorder [B, L, D], keep [B, L, T]."""
        B, L, D = ft.shape
        act = self.loop_dims
        DA = act.shape[0]
        T, J = self.T, L * DA
        dt, dev = ft.dtype, ft.device
        f64 = torch.float64
        coef = self.coef.to(dt)
        lvl = torch.arange(L, device=dev)
        jidx = torch.arange(J, device=dev)
        ends = (lvl + 1) * DA - 1  # last loop above keeper b = 1..L (b = L is the MAC)
        is_mac = lvl == L - 1  # in "child" indexing k = b - 1
        # A loop counts as a loop (for reuse) from factor 2 up; in the relaxed model this keeps
        # the reuse structure fixed near integer points instead of flipping at factor 1.
        big_thr = 1.5

        fs = fs2[..., 0] * fs2[..., 1]  # [B, L, D]
        f = ft * fs
        # extp[l, d]: extent of dim d spanned by levels >= l; extp[L] = 1 (one MAC).
        extp = torch.cat([torch.flip(torch.cumprod(torch.flip(f, [1]), 1), [1]),
                          torch.ones(B, 1, D, dtype=dt, device=dev)], 1)  # [B, L+1, D]
        step_t = fs * extp[:, 1:]  # stride of the temporal loop of d at level l, in units of d

        # Tile boxes per level and the MAC: box[b, t, l, r] = sum_d coef (ext - 1) + 1.
        box = torch.einsum("trd,bld->btlr", coef, extp - 1) + 1
        box = torch.where(self.rank_live[None, :, None, :], box, torch.ones_like(box))
        full = box.prod(-1)  # [B, T, L+1]
        box_b, full_b = box[:, :, 1:], full[:, :, 1:]

        # Temporal loops flattened outermost first (J = L*D).
        pos = act[torch.argsort(order[:, :, act], dim=-1)]  # active dims of each level, outermost first
        n = torch.gather(ft, 2, pos).reshape(B, J)
        st = torch.gather(step_t, 2, pos).reshape(B, J)
        dimj = pos.reshape(B, J)
        big = n > big_thr
        nprod = torch.cumprod(n, 1)
        cj = (n - 1) * torch.cat([torch.ones(B, 1, dtype=dt, device=dev), nprod[:, :-1]], 1)  # leaf weights
        n_b = nprod[:, ends]  # [B, Lb] temporal iterations above each keeper

        # Translation keys. Loop j's step moves a tile by kap_j; the step into a leaf where j
        # advances (and the non-trivial loops inside it fall back from 1 to 0) moves it by
        # g_j - kc_b, and that equals the innermost loop m's move iff g_j == h_b.
        kap = self.key_coef[:, dimj].permute(1, 0, 2) * st.to(f64)[:, None]  # [B, T, J]
        kcum = torch.cumsum(kap * big[:, None].to(f64), 2)
        g = kap + kcum
        lastbig = torch.cummax(torch.where(big, jidx, torch.full_like(jidx, -1).expand(B, J)), 1).values
        m_b = lastbig[:, ends]  # [B, Lb] innermost non-trivial loop above b
        has_m = m_b >= 0
        mi = m_b.clamp(min=0)
        kc_b = kcum[:, :, ends]  # [B, T, Lb]
        h = torch.gather(kap, 2, mi[:, None].expand(B, T, L)) + kc_b
        wmask = (jidx[None, :] <= ends[:, None])[None] & big[:, None, :]  # [B, Lb, J]
        same = (g[:, :, None, :] == h[..., None]) & wmask[:, None]  # [B, T, Lb, J]
        se = (same.to(dt) * cj[:, None, None, :]).sum(-1)
        # MAC operands: every MAC reads its operands at every step (Timeloop never differences
        # a MAC's point); what MACs reuse they take over links from mesh neighbours (below).
        diff_ok = has_m[:, None] & ~is_mac[None, None]  # [B, T, Lb]
        se = torch.where(diff_ok, se, torch.zeros_like(se))

        # Sliding-window delta of m's step: the tile minus its overlap with the previous one.
        d_m = torch.gather(dimj, 1, mi)
        st_m = torch.where(has_m, torch.gather(st, 1, mi), torch.zeros_like(n_b))
        tm = coef[:, :, d_m].permute(2, 0, 3, 1) * st_m[:, None, :, None]  # [B, T, Lb, R]
        delta_m = full_b - (box_b - tm.abs()).clamp(min=0).prod(-1)
        deltas = full_b * (n_b[:, None] - se) + delta_m * se  # [B, T, Lb] per child instance
        # (MACs without operand reuse read at every step: se = 0 there gives full_b * n_b = n_b)

        # Spatial loops between each child b and its parent keeper p.
        keep_t = keep.permute(0, 2, 1)  # [B, T, L]
        parent = torch.cummax(torch.where(keep_t, lvl, torch.full_like(lvl, -1).expand(B, T, L)), 2).values
        spc = torch.cat([torch.ones(B, 1, D, dtype=dt, device=dev), torch.cumprod(fs, 1)], 1)  # prod below < i

        # Timeloop multicasts only *identical* deltas; children whose tiles merely overlap get
        # their own copies. Each fanout level counts its own distinct child tiles (the tiles of
        # the level right below it): per rank, children sit at offsets i*a1 + j*a2, and the
        # number of distinct offsets is F1*F2 minus the pairs that coincide with a shifted pair.
        # Across several fanout levels between a parent and a child keeper the counts multiply
        # (Timeloop's masking of bypassing levels scales each level's accesses by its own).
        ext_below = extp[:, 1:]  # [B, L, D] stride of each level's spatial loops

        def level_gen(didx, cvec):
            a = ext_below[:, :, didx].permute(0, 2, 1, 3) * cvec[None, :, None, :]  # [B, T, L, R]
            fct = fs[:, :, didx].permute(0, 2, 1, 3)
            return a, torch.where(cvec[None, :, None, :] > 0, fct, torch.ones_like(fct))

        a1, f1 = level_gen(self.rank_d1, self.rank_c1.to(dt))
        a2, f2 = level_gen(self.rank_d2, self.rank_c2.to(dt))
        with torch.no_grad():
            i1 = torch.round(a1).clamp(min=1).to(torch.int64)
            i2 = torch.round(a2).clamp(min=1).to(torch.int64)
            gcd = torch.gcd(i1, i2)
            p_, q_ = (i1 // gcd).to(dt), (i2 // gcd).to(dt)
        two = (f1 > big_thr) & (f2 > big_thr)  # two spread dims on one rank: offsets may coincide
        per_rank = torch.where(two, f1 * f2 - (f1 - q_).clamp(min=0) * (f2 - p_).clamp(min=0), f1 * f2)
        dist_l = torch.where(self.rank_live[None, :, None, :], per_rank, torch.ones_like(per_rank)).prod(-1)  # [B, T, L]
        cum = torch.cat([torch.ones(B, T, 1, dtype=dt, device=dev), torch.cumprod(dist_l, 2)], 2)  # prod of l < j
        distinct = cum[:, :, 1:] / torch.gather(cum, 2, parent.clamp(min=0))  # levels parent..k, [B, T, Lb]

        # Link transfers (see the module docstring): counted over the PEs of each fanout by the
        # kernel's routine, exact integer combinatorics that carry no gradient. peer: words per
        # child taken over links; saved: parent accesses they save at the fanout right above the
        # child; up: how they change the multicast factor of the fanouts further up.
        links = self._link_terms(ft, fs2, order, sorder, keep, hw).to(dev, dt)  # [B, 3, T, Lb]
        peer, saved, up = links[:, 0], links[:, 1], links[:, 2]
        dlow = dist_l  # the fanout right above child b = level b - 1
        content_b = (deltas * dlow - saved) * (distinct / dlow) * up  # accesses per parent instance

        # Per level l: the child keeper below it (or the MAC) sends it content; l's own deltas
        # are its fills.
        kept_in = torch.where(keep_t, lvl, torch.full_like(lvl, L).expand(B, T, L))
        first_at_or_below = torch.flip(torch.cummin(torch.flip(kept_in, [2]), 2).values, [2])
        child = torch.cat([first_at_or_below[:, :, 1:], torch.full((B, T, 1), L, device=dev, dtype=torch.int64)], 2)
        content = torch.gather(content_b, 2, child - 1)  # [B, T, L]

        # Partition size: distinct points one instance ever holds (outputs' first-write elision).
        pext = self.bounds.to(dt) / spc[:, :L]
        pbox = torch.einsum("trd,bld->btlr", coef, pext - 1) + 1
        part = torch.where(self.rank_live[None, :, None, :], pbox, torch.ones_like(pbox)).prod(-1)  # [B, T, L]

        inst = torch.cat([torch.ones(B, 1, dtype=dt, device=dev), torch.cumprod(fs.prod(-1), 1)[:, :-1]], 1)  # [B, L]
        return _Nest(f=f, fs=fs, full=full, compute_cycles=nprod[:, -1], inst=inst, deltas=deltas, content=content,
                     part=part, peer=peer, keep_t=keep_t)

    def _access_counts(self, nest: _Nest, exact: bool) -> tuple[torch.Tensor, ...]:
        """Reads, fills, updates and tile words per level and tensor, each [B, T, L], from the
        loop analysis (rounded as Timeloop rounds them when ``exact``)."""
        B, T, L = nest.content.shape
        dt, dev = nest.content.dtype, nest.content.device
        lvl = torch.arange(L, device=dev)
        inst, peer, deltas, content, part = nest.inst, nest.peer, nest.deltas, nest.content, nest.part
        keep_t, full = nest.keep_t, nest.full
        zero = torch.zeros(B, T, 1, dtype=dt, device=dev)
        # A child takes its link transfers from a neighbour instead of its parent; Timeloop charges
        # them as a read and a fill spread over all instances of the level above (its
        # replication), not per child. Case: P=2 spread from a PE buffer kept by 4 PEs to 8 child
        # buffers, 72 transfers per child: 18 extra reads and fills each (fills 216 - 72 + 18).
        inst_up = torch.cat([torch.ones(B, 1, dtype=dt, device=dev), inst[:, :-1]], 1)[:, None]  # [B, 1, L]
        raw_peer = torch.cat([zero, peer[:, :, : L - 1]], 2)
        own_peer = raw_peer / inst_up
        own_deltas = torch.cat([zero, deltas[:, :, : L - 1]], 2) - raw_peer + own_peer  # DRAM has no parent
        rw = self.read_write[None, :, None]
        keepd = keep_t.to(dt)
        reads = (torch.where(rw, content - part, content) + own_peer) * keepd
        updates = torch.where(rw, content, torch.zeros_like(content)) * keepd
        fills = torch.where(rw, (own_deltas - part).clamp(min=0), own_deltas)
        fills = torch.where(lvl[None, None] == 0, torch.zeros_like(fills), fills) * keepd
        if exact:  # Timeloop rounds the (possibly averaged) access counts to whole accesses
            reads, updates = torch.floor(reads + 0.5), torch.floor(updates + 0.5)
            # (a read-only tensor's fills are truncated: Timeloop stores them as integers unrounded)
            fills = torch.where(rw, torch.floor(fills + 0.5), torch.floor(fills + 1e-6))
        tile = full[:, :, :L] * keepd

        return reads, fills, updates, tile

    def _energy_and_cycles(self, nest: _Nest, reads: torch.Tensor, fills: torch.Tensor, updates: torch.Tensor,
                           tile: torch.Tensor, fs2: torch.Tensor, keep: torch.Tensor, hw: Hardware,
                           exact: bool, computes: torch.Tensor | None = None, residual=None) -> Costs:
        """Energy (per block access, per utilized cluster, plus leakage), cycles (compute cycles
        throttled by each level's bandwidth) and the validity checks."""
        B, T, L = reads.shape
        dt, dev = reads.dtype, reads.device
        f64 = torch.float64
        inst, f, cc = nest.inst, nest.f, nest.compute_cycles
        blk = _rows(hw.block, 1).to(dt)[:, None, :]
        if exact:
            blocks = lambda x: torch.ceil(x / blk - 1e-9)  # noqa: E731  Accelergy charges whole blocks
        else:
            blocks = lambda x: x / blk  # noqa: E731
        # Timeloop spreads an access's energy over the utilized instances of its cluster: charged
        # once per utilized cluster, min(instances, clusters) (all instances when clusters are 1)
        charged = torch.minimum(inst, _rows(_clusters(hw), 1).to(dt))
        e_lt = charged[:, None, :] * (blocks(reads) * _rows(hw.read_energy, 1)[:, None, :]
                                   + (blocks(fills) + blocks(updates)) * _rows(hw.write_energy, 1)[:, None, :])
        macs = self.macs if computes is None else computes[:, None]  # Timeloop's MAC count (residuals)
        mac_e = (macs * hw.mac_energy).expand(B, 1) if hw.mac_energy.dim() == 0 else macs * hw.mac_energy[:, None]
        e_level = e_lt.sum(1)
        energy = e_level.sum(1) + mac_e[:, 0]
        energy_by_level = torch.cat([e_level, mac_e], 1)

        if exact:
            # Timeloop's throttling in its own float steps, so that its ceil rounds as ours does
            # (14 cycles, 116 reads at 4 words/cycle: 14 / (4 / (116/14)) = 29.000000000000004
            # -> 30 cycles): demand = sum over tensors, in order, of accesses / compute cycles;
            # slowdown = bandwidth / demand where demand exceeds it; cycles = ceil(cc / slowdown).
            # (in float64 whatever the model's dtype: these are Timeloop's double operations)
            rsum = torch.zeros(B, L, dtype=f64, device=dev)
            wsum = torch.zeros(B, L, dtype=f64, device=dev)
            cc64 = cc.to(f64)[:, None]
            for t in range(T):
                rsum = rsum + reads[:, t].to(f64) / cc64
                wsum = wsum + (fills[:, t].to(f64) + updates[:, t].to(f64)) / cc64
            rbw, wbw = _rows(hw.read_bw, 1).to(f64), _rows(hw.write_bw, 1).to(f64)
            one = torch.ones_like(rsum)
            slow = torch.minimum(torch.where(rbw < rsum, rbw / rsum, one), torch.where(wbw < wsum, wbw / wsum, one))
            lc = torch.ceil(cc64 / slow).to(dt)
        else:
            lc = torch.maximum(torch.maximum(cc[:, None], reads.sum(1) / _rows(hw.read_bw, 1)),
                               (fills + updates).sum(1) / _rows(hw.write_bw, 1))
        cycles = lc.amax(1)
        # Leakage (Timeloop v4): the ERT's leak energy per utilized instance and cycle, over the
        # whole run; Timeloop splits it equally among the tensors in its per-tensor breakdown.
        # (0 where a level has no leak: never 0 x inf = nan for a design whose cycles are inf)
        le = _rows(hw.leak_energy, 1).to(dt)
        leak = torch.where(le != 0, le * inst * cycles[:, None], torch.zeros_like(inst))  # [B, L]
        e_lt = e_lt + leak[:, None, :] / T
        e_level = e_level + leak
        energy = energy + leak.sum(1)
        energy_by_level = torch.cat([e_level, mac_e], 1)
        util = (self.macs if computes is None else computes) / (cycles * hw.mac_instances)
        area = hw.total_area.expand(B) if hw.total_area.dim() == 0 else hw.total_area

        if residual is None:
            factor_error = torch.log(f).sum(1) - torch.log(self.bounds.to(dt))
        else:  # the bound rule (covered, not the product of the ends)
            factor_error = torch.log(residual) - torch.log(self.bounds.to(dt))
        fanout_excess = _fanout_excess(fs2, hw)
        cap_excess = tile.sum(1) - _rows(hw.capacity, 1)
        reason = _reason(keep, cap_excess, fanout_excess, factor_error, exact)
        return Costs(energy=energy, cycles=cycles, edp=energy * cycles, utilization=util,
                     power=energy / cycles * hw.clock_ghz, area=area, valid=reason == VALID, reason=reason,
                     energy_by_level=energy_by_level, energy_by_level_tensor=e_lt.permute(0, 2, 1),
                     reads=reads.permute(0, 2, 1), fills=fills.permute(0, 2, 1), updates=updates.permute(0, 2, 1),
                     tile=tile.permute(0, 2, 1), instances=inst, compute_cycles=cc, level_cycles=lc,
                     capacity_excess=cap_excess, fanout_excess=fanout_excess, factor_error=factor_error)

    # ---- residual loops (Timeloop's imperfect factors, issue 16) --------------------------------
    def _residual_chains(self, ft, fs, rt, rs):
        """Loops of each dim in Timeloop's tiling-level order (level l's temporal loop, then the
        spatial loop of its fan-out), ends ft/fs and residual ends rt/rs [B, L, D].

        Returns F, R [B, L + 1, D] (level b's full and last extents: the product of the ends and
        the bound fold of the loops from b's temporal loop in; 1 at b = L, the MAC), anyr [B, L + 1, D]
        (some loop above b has r > 1), A, C [B, L + 1, D] (element 0's visits of b's tile with
        the dim on its global last / not: a temporal loop runs r at the global last, f
        elsewhere; element 0 of a fan-out is on its last element only when the loop runs to 1),
        body0 and V [B, D] (the MAC count, the MAC fan-out's elements all simulated)."""
        B, L, D = ft.shape
        dt, dev = ft.dtype, ft.device
        one = torch.ones(B, D, dtype=dt, device=dev)
        Fin, Rin = [one], [one]
        for l in range(L - 1, -1, -1):
            for f, r in ((fs[:, l], rs[:, l]), (ft[:, l], rt[:, l])):
                Rin.append((r - 1) * Fin[-1] + Rin[-1])
                Fin.append(f * Fin[-1])
        Fb = torch.stack([Fin[2 * (L - b)] for b in range(L + 1)], 1)
        Rb = torch.stack([Rin[2 * (L - b)] for b in range(L + 1)], 1)
        a, c = one, torch.zeros_like(one)
        anyr = torch.zeros(B, D, dtype=torch.bool, device=dev)
        A, C, AR = [a], [c], [anyr]
        for l in range(L):
            f, r = ft[:, l], rt[:, l]
            c = a * (r - 1) + c * f  # a temporal loop keeps the last context's visits, adds r - 1 others
            anyr = anyr | (r > 1.5)
            f, r = fs[:, l], rs[:, l]
            if l == L - 1:
                V = torch.where(c > 0.5, f, torch.where(a > 0.5, r, one))
                body0 = a * r + c * f
            last1 = r < 1.5
            a, c = torch.where(last1, a, torch.zeros_like(a)), c + torch.where(last1, torch.zeros_like(a), a)
            anyr = anyr | (r > 1.5)
            A.append(a), C.append(c), AR.append(anyr)
        return Fb, Rb, torch.stack(AR, 1), torch.stack(A, 1), torch.stack(C, 1), body0, V

    def _tiles(self, ext: torch.Tensor) -> torch.Tensor:
        """Tile words [..., T, L'] of extents ext [..., L', D]."""
        coef = self.coef.to(ext.dtype)
        box = torch.einsum("trd,...ld->...tlr", coef, ext - 1) + 1
        live = self.rank_live[:, None, :]
        return torch.where(live, box, torch.ones_like(box)).prod(-1)

    def _evaluate_residual(self, batch: MappingBatch, hw: Hardware) -> Costs:
        """The model for a batch with residual ends (Timeloop's ``P=8,5``), exact as Timeloop
        v3.0.3 counts them (see the module docstring): tiles, MACs and compute cycles in closed
        form, each mapping's access statistics from element 0's trace (``_level_stats``, plain
        Python: about 50-70 mappings/s on one core for conv layers on eyeriss_like and
        simple_pe16x16, far below the perfect kernel), then Timeloop's partition sizes, parent
        shares and masking of bypassing levels as tensor operations over the batch."""
        dt, dev = self.dtype, self.device
        ft, fs2 = batch.temporal.to(dt), batch.spatial.to(dt)
        rt_, rs2_ = batch.residual_ends()
        rt, rs2 = rt_.to(dt), rs2_.to(dt)
        fs, rs = fs2.prod(-1), rs2.prod(-1)
        order, keep, sorder = batch.order, batch.keep, batch.spatial_order
        B, L, _ = ft.shape
        T = self.T
        Fb, Rb, anyr, _, _, body0, V = self._residual_chains(ft, fs, rt, rs)
        full = self._tiles(torch.where(anyr, Fb, Rb))  # [B, T, L + 1] tiles: each dim at its largest extent
        keep_t = keep.permute(0, 2, 1)  # [B, T, L]
        tot, wt, link = self._level_stats(ft, rt, fs2, rs2, order, sorder, batch.imperfect, hw)  # [B, T, L]
        fan_l = fs.prod(-1)[:, None, :].expand(B, T, L)  # logical fan-out of each level
        # A parent's content through bypassing levels (Timeloop's masking): from the child keeper
        # up, each bypassing level k passes what its child took from it, content_k, to the level
        # above, which scales its own statistics to content_k x fan-out / its weighted accesses.
        cont = [tot[:, :, L - 1]]
        for q in range(L - 2, -1, -1):
            scale = torch.where(wt[:, :, q] > 0, cont[0] * fan_l[:, :, q] / wt[:, :, q], torch.zeros_like(cont[0]))
            cont.insert(0, torch.where(keep_t[:, :, q + 1], tot[:, :, q], tot[:, :, q] * scale))
        content = torch.stack(cont, 2)
        # Fills: the share of the level right above (kept or not) over its logical fan-out. Link
        # transfers are words per child; _access_counts moves them from the share to a read and a
        # fill spread over the child level's instances, as Timeloop does.
        peer = link / fan_l
        deltas = wt / fan_l + peer  # [B, T, L]: what level k's child k + 1 receives per instance
        # Partition sizes as Timeloop chains them over all levels (bypassing ones too), in integers:
        # DRAM's is its tile; below a fan-out, the parent's partition x the tile / the tile the
        # fan-out's elements span together (the largest it holds), else the parent's.
        anyr_sp = anyr[:, :L] | (rt > 1.5)  # a loop above level l's fan-out has a residual end > 1
        span = self._tiles(torch.where(anyr_sp, fs * Fb[:, 1:], (rs - 1) * Fb[:, 1:] + Rb[:, 1:]))  # [B, T, L]
        has_fan = (fs > 1.5).any(-1)[:, None, :].expand(B, T, L)
        parts = [full[:, :, 0]]
        for c in range(1, L):
            parts.append(torch.where(has_fan[:, :, c - 1], torch.floor(parts[-1] * full[:, :, c] / span[:, :, c - 1] + 1e-9),
                                     parts[-1]))
        part = torch.stack(parts, 2)
        inst = torch.cat([torch.ones(B, 1, dtype=dt, device=dev), torch.cumprod(fs.prod(-1), 1)[:, :-1]], 1)  # [B, L]
        nest = _Nest(f=ft * fs, fs=fs, full=full, compute_cycles=ft.prod(-1).prod(-1), inst=inst, deltas=deltas,
                     content=content, part=part, peer=peer, keep_t=keep_t)
        reads, fills, updates, tile = self._access_counts(nest, True)
        computes = torch.floor(body0.prod(-1) / V.prod(-1) * fs.flatten(1).prod(-1) + 1e-9)
        return self._energy_and_cycles(nest, reads, fills, updates, tile, fs2, keep, hw, True, computes=computes,
                                       residual=Rb[:, 0])

    def _level_stats(self, ft, rt, fs2, rs2, order, sorder, imperfect, hw):
        """Timeloop's access statistics at the innermost loop of each level k, for the tile of
        level k + 1 (k = L - 1: the MACs), from element 0's trace (``_element0_deltas``), each
        [B, T, L]: tot, the accesses; wt, the accesses times their multicast (the words the
        elements receive from the level); link, the words they take over links instead."""
        B, L, _ = ft.shape
        T = self.T
        dt = ft.dtype
        ranks = self._rank_lists()
        out = torch.zeros(B, L, T, 3, dtype=torch.float64)
        ii = lambda x: x.detach().round().to(torch.int64).cpu().tolist()  # noqa: E731
        FT, RT, FS, RS, OR, SO = ii(ft), ii(rt), ii(fs2), ii(rs2), ii(order.to(torch.int64)), ii(sorder.to(torch.int64))
        mesh = _rows(hw.fanout, 2)[:, :, 0].round().to(torch.int64).cpu().tolist()
        imp = imperfect.cpu().tolist()
        cache = self._trace_cache
        if sum(len(v) for v in cache.values()) > 50_000:
            cache.clear()
        for bi in range(B):
            res = _element0_deltas(FT[bi], RT[bi], FS[bi], RS[bi], OR[bi], SO[bi], mesh[bi % len(mesh)], ranks, imp[bi],
                                   cache)
            out[bi] = torch.tensor(res, dtype=torch.float64)
        out = out.to(self.device, dt).permute(0, 2, 1, 3)  # [B, T, L, 3]
        return out[..., 0], out[..., 1], out[..., 2]

    def _rank_lists(self):
        """Per tensor, its ranks as lists of (dim index, coefficient)."""
        dims = list(self.workload.dims)
        return [[[(dims.index(d), c) for d, c in rank] for rank in t.ranks] for t in self.workload.tensors]

    def _link_terms(self, ft, fs2, order, sorder, keep, hw) -> torch.Tensor:
        """Link-transfer terms [B, 3, T, L] (peer, saved, up; see the kernel's outputs) from the
        kernel's routine, on the mapping's factors rounded to integers. Only the fanouts of the
        hardware matter to them: rows with batched hardware are grouped by fanout."""
        from accelmap.model import kernel

        rnd = lambda x: torch.round(x.detach()).clamp(min=1).to(torch.int64).cpu().numpy()  # noqa: E731
        temporal, spatial = rnd(ft), rnd(fs2)
        arr = lambda x: x.detach().cpu().numpy()  # noqa: E731
        order_, sorder_, keep_ = arr(order), arr(sorder), arr(keep)
        plan = self.kernel_plan(self.hw)
        fan = _rows(hw.fanout, 2).detach().cpu().numpy().astype(np.float64)
        if fan.shape[0] == 1:
            out = kernel.link_terms(plan._replace(fanout=np.ascontiguousarray(fan[0])), temporal, spatial, order_,
                                    sorder_, keep_)
            return torch.from_numpy(out)
        out = np.empty((len(temporal), 3, self.T, len(fan[0])))
        keys, inverse = np.unique(fan.reshape(len(fan), -1), axis=0, return_inverse=True)
        for gi in range(len(keys)):
            rows = np.nonzero(inverse.reshape(-1) == gi)[0]
            out[rows] = kernel.link_terms(plan._replace(fanout=np.ascontiguousarray(fan[rows[0]])), temporal[rows],
                                          spatial[rows], order_[rows], sorder_[rows], keep_[rows])
        return torch.from_numpy(out)




def _fanout_excess(fs2: torch.Tensor, hw: Hardware) -> torch.Tensor:
    """[B, L, 2] log of each fan-out's spatial product over its mesh axis (<= 0 fits)."""
    fan = torch.log(_rows(hw.fanout, 2).to(fs2.dtype))
    return torch.stack([torch.log(fs2[..., 0]).sum(2) - fan[:, :, 0], torch.log(fs2[..., 1]).sum(2) - fan[:, :, 1]], -1)


def _reason(keep: torch.Tensor, cap_excess: torch.Tensor, fanout_excess: torch.Tensor, factor_error: torch.Tensor,
            exact: bool) -> torch.Tensor:
    """[B] why each mapping is illegal (0: legal), the later checks taking precedence: DRAM must
    keep every tensor, tiles fit (half a word of slack for exact counts), fan-outs fit, factors
    cover the bounds."""
    reason = torch.zeros(len(keep), dtype=torch.int64, device=keep.device)
    for code, bad in ((BAD_KEEP, ~keep[:, 0, :].all(-1)), (BAD_CAPACITY, (cap_excess > (0.5 if exact else 0.0)).any(1)),
                      (BAD_FANOUT, (fanout_excess > 1e-6).flatten(1).any(1)), (BAD_FACTORS, (factor_error.abs() > 1e-6).any(1))):
        reason = torch.where(bad, torch.full_like(reason, code), reason)
    return reason


def _padded_ends(batch: MappingBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The ends of the padded nest of ``CostModel.screen``: each loop's end, except the outermost
    loop of each dim, which always runs its residual end (its dim is on its last iteration
    outside it). Returns temporal [B, L, D] and spatial [B, L, D, 2] ends."""
    ft, fs2 = batch.temporal, batch.spatial
    rt, rs2 = batch.residual_ends()
    B, L, D = ft.shape
    # loops in Timeloop's tiling order: level l's temporal loop, then its spatial Y and X loops
    e = torch.stack([ft, fs2[..., 1], fs2[..., 0]], 2).reshape(B, 3 * L, D)
    r = torch.stack([rt, rs2[..., 1], rs2[..., 0]], 2).reshape(B, 3 * L, D)
    live = e > 1
    first = live & (torch.cumsum(live.to(torch.int64), 1) == 1)
    e = torch.where(first, r, e).reshape(B, L, 3, D)
    return e[:, :, 0].contiguous(), torch.stack([e[:, :, 2], e[:, :, 1]], -1).contiguous()


def _element0_deltas(ft, rt, fs2, rs2, order, sorder, mesh_x, tensors, imperfect, cache=None):
    """Timeloop's access statistics of one mapping at the innermost loop of each level k, for
    the tile of level k + 1 (k = L - 1: the MACs' operand points), traced in Timeloop's order.

    ft, rt: [L][D] temporal ends and residual ends; fs2, rs2: [L][D][2] spatial (X, Y); order,
    sorder: [L][D] loop positions (smaller = outer); mesh_x: [L] each fan-out's mesh X; tensors:
    per tensor its ranks, each a list of (dim, coef); imperfect: Timeloop's global flag; cache: a
    dict shared by the mappings of one workload (element layouts and mesh neighbours).

    Timeloop simulates element 0 of every fan-out above the tile (the MAC fan-out's elements
    all); every other element's delta is element 0's, translated. Returns [L][T] triples (tot,
    wt, link): the accesses (each distinct delta among the elements that run once), the
    accesses times their multicast, and the words taken over links from mesh neighbours."""
    L, D = len(ft), len(ft[0])
    T = len(tensors)
    loops = []  # (level, dim, f, r, spatial), outermost first: a level's temporal, then its spatial loops
    fans = []  # per level, its fan-out's loops outermost first: Y loops, then X loops (X: the fastest digits)
    for l in range(L):
        for d in sorted(range(D), key=lambda d: order[l][d]):
            if ft[l][d] > 1:
                loops.append((l, d, ft[l][d], rt[l][d], False))
        fan = []
        for ax in (1, 0):
            for d in sorted(range(D), key=lambda d: sorder[l][d]):
                if fs2[l][d][ax] > 1:
                    fan.append((d, fs2[l][d][ax], rs2[l][d][ax], ax))
        fans.append(fan)
        for d in range(D):
            f = fs2[l][d][0] * fs2[l][d][1]
            if f > 1:
                loops.append((l, d, f, rs2[l][d][0] * rs2[l][d][1], True))
    stride = [0] * len(loops)  # Timeloop's vector strides: the ends of the dim's loops inside
    acc = [1] * D
    for i in range(len(loops) - 1, -1, -1):
        stride[i] = acc[loops[i][1]]
        acc[loops[i][1]] *= loops[i][2]
    proj = [[[sum(c for dd, c in rk if dd == d) for rk in ranks] for d in range(D)] for ranks in tensors]

    def shift_box(box, sh):
        return None if box is None else (tuple(v + h for v, h in zip(box[0], sh)), box[1])

    def moved_equal(cn, u, pcn):
        """cn moved by u is pcn (two deltas in canonical form; None: empty)."""
        if cn is None or pcn is None:
            return False
        (bl, be), hole = cn
        (pbl, pbe), phole = pcn
        if be != pbe or any(a + x != c for a, x, c in zip(bl, u, pbl)):
            return False
        if hole is None or phole is None:
            return hole is None and phole is None
        return hole[1] == phole[1] and all(a + x == c for a, x, c in zip(hole[0], u, phole[0]))

    def shift_canon(cn, sh):
        return None if cn is None else (shift_box(cn[0], sh), shift_box(cn[1], sh))

    unit = [[tuple(proj[ti][d]) for d in range(D)] for ti in range(T)]
    moves = [any(any(unit[ti][d]) for ti in range(T)) for d in range(D)]  # dim d indexes some tensor

    def shifted(state, d, s):
        """A state moved by s along dim d (each tensor's coordinates)."""
        if s == 0:
            return state
        out = []
        if not moves[d]:
            return state
        for ti in range(T):
            tile, link = state[ti]
            u = unit[ti][d]
            if not any(u):
                out.append(state[ti])
                continue
            sh = tuple(c * s for c in u)
            if tile is not None:
                tile = (tuple(v + h for v, h in zip(tile[0], sh)), tile[1], tile[2])
            if link is not None and link[0] is not None:
                link = (shift_canon(link[0], sh), link[1])
            out.append((tile, link))
        return tuple(out)

    def canon(new, inter):
        """The delta new minus inter (a box inside new, or None) as (its bounding box, the hole
        in it): one form per point set, so that equal deltas compare equal."""
        lo, e = new
        if inter is None:
            return ((lo, e), None)
        ilo, ie = inter
        if ilo == lo and ie == e:
            return None  # empty
        bl, be = list(lo), list(e)
        for k in range(len(e)):
            if all(ilo[j] == lo[j] and ie[j] == e[j] for j in range(len(e)) if j != k):
                if ilo[k] == lo[k]:  # the overlap is a slab at the low end: the delta is a box
                    bl[k], be[k] = lo[k] + ie[k], e[k] - ie[k]
                    return ((tuple(bl), tuple(be)), None)
                if ilo[k] + ie[k] == lo[k] + e[k]:
                    be[k] = e[k] - ie[k]
                    return ((tuple(bl), tuple(be)), None)
        return ((lo, e), (ilo, ie))

    cache = {} if cache is None else cache
    layouts = cache.setdefault("layouts", {})
    pairs = cache.setdefault("pairs", {})

    # One integer per offset (and per step between offsets): ranks in mixed radix 2 x extent + 1.
    radix = []
    for ti in range(T):
        rx, w_ = [], 1
        for q in range(len(tensors[ti])):
            rx.append(w_)
            w_ *= 2 * sum(proj[ti][d][q] * (acc[d] - 1) for d in range(D)) + 3
        if w_ >= 2 ** 62:
            raise AccelmapError("a tensor is too large for the residual model's offset keys")
        radix.append(np.asarray(rx, dtype=np.int64))
    # what a layout depends on besides the fan-out: the tensor's projection and its key radix
    proj_key = [(tuple(map(tuple, proj[ti])), tuple(radix[ti].tolist())) for ti in range(T)]

    def layout(fan, ends, st_of, ti):
        """The elements that run at a fan-out (ends: each loop's end now), by linear index: their
        offsets' keys in the tensor's coordinates (one integer per offset), their offsets, and
        how many distinct offsets there are."""
        key = (fan, ends, st_of, proj_key[ti])
        got = layouts.get(key)
        if got is None:
            n = math.prod(ends)
            flat = np.arange(n, dtype=np.int64)
            off = np.zeros((n, len(tensors[ti])), dtype=np.int64)
            for (d, f, r, ax), e in zip(reversed(fan), reversed(ends)):
                off += np.outer(flat % e, np.asarray(proj[ti][d], dtype=np.int64) * st_of[d])
                flat //= e
            keys = off @ radix[ti]
            got = layouts[key] = (keys, off, len(np.unique(keys)))
        return got

    def neighbours(fan, ends, prev_ends, st_of, H, ti):
        """For each offset step u between an element and a mesh neighbour's element one call
        before, the elements it would link (Timeloop's up, down, left and right links):
        [(u, element indices)]."""
        key = (fan, ends, prev_ends, st_of, H, proj_key[ti])
        got = pairs.get(key)
        if got is None:
            keys, off, _ = layout(fan, ends, st_of, ti)
            pkeys, poff, _ = layout(fan, prev_ends, st_of, ti)
            n, m = len(off), len(poff)
            lin = np.arange(n)
            h, v = lin % H, lin // H
            src, dst = [], []
            for dh, dv in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                nh, nv = h + dh, v + dv
                nb = nv * H + nh
                ok = (nh >= 0) & (nh < H) & (nv >= 0) & (nb < m)
                src.append(lin[ok])
                dst.append(nb[ok])
            src, dst = np.concatenate(src), np.concatenate(dst)
            got = []
            if len(src):  # (a step's key is the difference of the keys: the radix holds negative steps too)
                _, first, inv_ = np.unique(keys[src] - pkeys[dst], return_index=True, return_inverse=True)
                inv_ = inv_.reshape(-1)
                got = [(tuple(int(x) for x in off[src[i0]] - poff[dst[i0]]), src[inv_ == i]) for i, i0 in enumerate(first)]
            pairs[key] = got
        return got

    def spatial_stats(words, cn, prev, fan, ends, st_of, H, ti):
        """(tot, wt, link, new link state) of one call at a fan-out: element 0's delta of size
        words and form cn at every element that runs; links from the neighbours' previous deltas."""
        keys, _, without = layout(fan, ends, st_of, ti)
        if words == 0:
            return 0.0, 0.0, 0.0, (cn, ends)
        n = len(keys)
        best = (words * without, words * n, 0.0)
        if prev is not None and prev[0] is not None:
            linked = None
            for u, lins in neighbours(fan, ends, prev[1], st_of, H, ti):
                if moved_equal(cn, u, prev[0]):
                    if linked is None:
                        linked = np.zeros(n, dtype=bool)
                    linked[lins] = True
            if linked is not None:
                n_l = int(linked.sum())
                rest = len(np.unique(keys[~linked]))
                if rest < without:
                    best = (words * rest, words * (n - n_l), words * n_l)
        return best + ((cn, ends),)

    result = [[(0.0, 0.0, 0.0)] * T for _ in range(L)]
    for b in range(1, L + 1):
        k = b - 1  # the level whose innermost loop serves b's tile
        above = [i for i, lp in enumerate(loops) if lp[0] < b and not (lp[0] == k and lp[4])]
        lp = [loops[i] for i in above]
        st = [stride[i] for i in above]
        J = len(lp)
        fan = tuple(fans[k])
        st_of = [0] * D
        for i, (l, d, f, r, sp) in enumerate(loops):
            if l == k and sp:
                st_of[d] = stride[i]
        st_of = tuple(st_of)
        nxl = math.prod(f for d, f, r, ax in fan if ax == 0)
        H = max(mesh_x[k], nxl)
        F, R = [1] * D, [1] * D  # b's tile: full and residual extents of the loops at and below b
        for i in range(len(loops) - 1, -1, -1):
            l, d, f, r, sp = loops[i]
            if l >= b:
                R[d] = (r - 1) * F[d] + R[d]
                F[d] = f * F[d]
        memo, extents, leaves = {}, {}, {}

        near_r = [1] * D
        for d, f, r, ax in fan:
            near_r[d] *= r

        def leaf(brk, state, b=b, fan=fan, st_of=st_of, H=H, F=F, R=R, J=J, near_r=near_r, extents=extents, leaves=leaves):
            """One call of level k's innermost loop: per tensor (tot, wt, link), and the state."""
            got = leaves.get((brk, state))
            if got is not None:
                return got
            ends = tuple((f if brk >> d & 1 else r) for d, f, r, ax in fan)  # r where every loop outside is last
            out, new_state = [], []
            for ti, ranks in enumerate(tensors):
                tile, link = state[ti]
                if b == L:  # a MAC operand: a point, never differenced
                    words, cn, new_tile = 1, ((tuple(0 for _ in ranks), tuple(1 for _ in ranks)), None), None
                else:
                    got = extents.get((brk, ti))
                    if got is None:
                        # (element 0 of the fan-out is on its dim's last element only if that loop's r is 1)
                        ext = [F[d] if brk >> d & 1 or near_r[d] > 1 else R[d] for d in range(D)]
                        e = tuple(sum(c * (ext[d] - 1) for d, c in rk) + 1 for rk in ranks)
                        got = extents[(brk, ti)] = (e, math.prod(e), (0,) * len(ranks))
                    e, size, lo = got
                    if tile is None:  # first use: the whole tile, no translation yet
                        words, cn, new_tile = size, ((lo, e), None), (lo, e, None)
                    else:
                        plo, pe, ptr = tile
                        # the translation: the centroids' difference (centroid = low + (extent - 1) / 2),
                        # rounded half away from zero; x = twice the difference
                        tr = tuple((x + 1) // 2 if x >= 0 else -((1 - x) // 2)
                                   for x in (e[q] - pe[q] - 2 * plo[q] for q in range(len(e))))
                        if ptr is None or ptr == tr:  # difference with the previous tile
                            ilo = tuple(max(lo[q], plo[q]) for q in range(len(e)))
                            ihi = tuple(min(lo[q] + e[q], plo[q] + pe[q]) for q in range(len(e)))
                            if all(h > l_ for h, l_ in zip(ihi, ilo)):
                                inter = (ilo, tuple(h - l_ for h, l_ in zip(ihi, ilo)))
                                words = size - math.prod(inter[1])
                            else:
                                inter, words = None, size
                            cn = canon((lo, e), inter)
                            new_tile = (lo, e, tr if ptr is None else ptr)
                        else:  # the stride changed: the previous tile is discarded, the whole tile moves
                            words, cn, new_tile = size, ((lo, e), None), (lo, e, None)
                if fan:
                    tot, wt, lk, new_link = spatial_stats(words, cn, link, fan, ends, st_of, H, ti)
                else:
                    tot = wt = float(words)
                    lk, new_link = 0.0, None
                out.append((tot, wt, lk))
                new_state.append((new_tile, new_link))
            got = leaves[(brk, state)] = (out, tuple(new_state))
            return got

        # Element 0 of a fan-out above runs index 0 only: such a loop moves nothing and breaks its
        # dim's last-iteration chain when its r > 1. Folded into the temporal loop inside it (or
        # the leaf), as a mask of dims it breaks.
        lt, st_t, pre = [], [], []
        mask = 0
        for (l, d, f, r, sp), s_ in zip(lp, st):
            if sp:
                mask |= (1 << d) if r > 1 else 0
            else:
                lt.append((l, d, f, r))
                st_t.append(s_)
                pre.append(mask)
                mask = 0
        post = mask
        JT = len(lt)

        def inv(j, brk, state, lt=lt, st=st_t, pre=pre, post=post, JT=JT, memo=memo, leaf=leaf, k=k, b=b):
            key = (j, brk, state)
            hit = memo.get(key)
            if hit is not None:
                return hit
            brk |= pre[j]
            l, d, f, r = lt[j]
            unbroken = not brk >> d & 1
            n = r if unbroken else f
            if imperfect:  # #0, #1 for n - 3 epochs, #n-2, #last
                its = ([(0, 1)] + ([(1, n - 3)] if n >= 4 else []) + ([(n - 2, 1)] if n >= 3 else [])
                       + ([(n - 1, 1)] if n >= 2 else []))
            else:  # #0, #1 for n - 1 epochs
                its = [(0, 1)] + ([(1, n - 1)] if n >= 2 else [])
            at_leaf = j == JT - 1
            # a temporal loop right above a keeper's tile counts #1's delta again in place of #n-2's
            repeat = at_leaf and imperfect and l == k and not fans[k] and b < L and n >= 4
            acc_ = [[0.0, 0.0, 0.0] for _ in range(T)]
            d1 = None
            at = 0  # the state is relative to the base of iteration #at (#0's base is this loop's)
            for kk, (idx, mult) in enumerate(its):
                nb = brk if (not unbroken or idx + 1 >= r) else brk | 1 << d
                if at_leaf:
                    nb |= post
                if idx != at:
                    state = shifted(state, d, (at - idx) * st[j])
                    at = idx
                if at_leaf:
                    sub, state = leaf(nb, state)
                    if repeat and kk == 2:
                        sub = d1
                    if kk == 1:
                        d1 = sub
                else:
                    sub, state = inv(j + 1, nb, state)
                for ti in range(T):
                    a_, s_ = acc_[ti], sub[ti]
                    a_[0] += s_[0] * mult
                    a_[1] += s_[1] * mult
                    a_[2] += s_[2] * mult
            if at:
                state = shifted(state, d, at * st[j])
            memo[key] = (acc_, state)
            return acc_, state

        init = tuple((None, None) for _ in tensors)
        if JT == 0:
            result[k] = leaf(post, init)[0]
        else:
            result[k] = inv(0, 0, init)[0]
    return result


def kernel_needs_compile(device: str = "cpu", parallel: bool = False) -> bool:
    """True when searching on ``device`` would first compile the CPU kernel (once after install):
    the serial one that single-threaded worker processes use, with ``parallel`` (a search in
    this process, on all its cores) the multi-threaded one too."""
    if device != "cpu":
        return False
    from accelmap.model import kernel

    return not kernel.is_compiled(parallel)


def compile_kernel(parallel: bool = False) -> float:
    """Compile the CPU kernel into numba's cache now (see cost_model.compile_kernel_in_child);
    returns the seconds it took."""
    t0 = time.perf_counter()
    compile_kernel_in_child(parallel)
    return time.perf_counter() - t0


def compile_kernel_in_child(parallel: bool = False) -> bool:
    """Compile the CPU kernel into numba's on-disk cache in a child process and wait for it.

    Done once after install, before worker processes start, so that no layer's search time
    includes it and the workers only load the cached code. A child process, because compiling
    the kernel's parallel loop starts numba's OpenMP threads, after which this process could no
    longer fork its workers. Returns False if the child failed (the workers then compile for
    themselves, as before)."""
    code = f"from accelmap.model.cost_model import _compile_kernel_here; _compile_kernel_here({bool(parallel)})"
    return run_children([code])


def run_children(codes: list[str]) -> bool:
    """Run each Python snippet in a child process, all side by side, and wait for them; True if
    every one succeeded. Each child has its own session: a Ctrl-C at the terminal reaches this
    process only, which stops them quietly (numba would print its own tracebacks)."""
    import subprocess
    import sys

    children = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, start_new_session=True) for code in codes]
    try:
        for child in children:
            child.communicate()
    except BaseException:
        for child in children:
            child.kill()
            child.wait()
        raise
    return all(child.returncode == 0 for child in children)


def _compile_kernel_here(parallel: bool = False) -> None:
    # The signature depends only on the argument dtypes and ranks, not on the problem, so any
    # small problem on any architecture compiles the one signature every search uses.
    from accelmap.arch.load import preset
    from accelmap.workload.workload import conv2d

    w = conv2d("compile", C=2, K=2, P=4)
    CostModel(w, preset("simple_pe16x16")).compile_kernel(parallel)
