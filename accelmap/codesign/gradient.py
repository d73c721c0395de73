"""The analytical co-design method: joint gradient descent on hardware and relaxed mappings, then
parallel local search on the rounded designs (the constrained, not weighted-sum, formulation)."""

from __future__ import annotations

from dataclasses import fields

import torch

from accelmap.arch.hardware import _BASE_DIMS, Hardware
from accelmap.codesign.base import CoDesigner, register
from accelmap.codesign.problem import Design


def _grad_on_rows(hw: Hardware, mask: torch.Tensor) -> Hardware:
    """Batched hardware whose rows outside ``mask`` [N] carry no gradient."""
    out = []
    for f in fields(hw):
        x = getattr(hw, f.name)
        base = _BASE_DIMS[f.name]
        if x.dim() > base:
            m = mask.view(-1, *([1] * base))
            x = torch.where(m, x, x.detach())
        out.append(x)
    return Hardware(*out)


@register
class GradientCoDesign(CoDesigner):
    """Analytical co-optimization (Hong et al.; DOSA-like): Adam on the hardware parameters (log
    space, squashed into their ranges) and on every layer's relaxed mappings at once, with the
    network objective and budgets as log penalties under a rising schedule; then rounding and
    parallel local search of the mappings, then of the hardware (each step screens all single
    and paired parameter moves with the incumbent mappings, and polishes the best few).

    Each layer's relaxed mapping starts (loop orders and bypass from random legal seeds, the
    small candidate set over which orders are enumerated) train on their own per-layer
    objective; the hardware follows the network objective through the best start of each
    layer (chosen at the previous step) only, so it is not pulled by every start's wishes.
    """

    name = "gradient"
    summary = "joint gradient on hardware + relaxed mappings, rounding, parallel local search (analytical co-optimization)"
    starts = 6  # hardware starts (the base point and random ones)
    per_start = 12  # mapping starts per layer and hardware start
    steps = 80
    first_steps = 40  # a shorter first descent: a good design early, deeper rounds after
    lr_map, lr_hw = 0.1, 0.05
    polish_steps = 10
    screened = 4  # hardware neighbours polished longer per local-search step
    screen_pool = 4  # incumbent mappings per layer each neighbour starts from

    def search(self) -> None:
        """Rounds of (descent from fresh starts, rounding, local search) until the time is up;
        later rounds start half their hardware points near the best design so far."""
        p = self.problem
        stop = self.past_deadline
        rounds = 0
        warm = any(d is not None for d in self.initial)  # then even the first round starts near the best
        while not self.out_of_time():
            seeds = p.seed_pools(self.per_start, self.gen)
            starts = self._descend(seeds, self.first_steps if rounds == 0 else self.steps,
                                   first=rounds == 0 and not warm)
            rounds += 1
            designs = []
            for values, pools in starts:
                if self.out_of_time():
                    return
                d = p.design(values, [torch.cat([a, b]) for a, b in zip(pools, seeds)], self.gen, self.polish_steps,
                             stop=stop)
                self.offer(d)
                designs.append(d)
            designs.sort(key=lambda d: d.rank)
            self._hardware_search(designs[0])
            if not self.out_of_time():  # a longer polish of the winner's mappings
                self.offer(p.design(self.best.values, self.best.pools, self.gen, 4 * self.polish_steps, stop=stop))

    # ---- phase 1: joint relaxed descent --------------------------------------------------------
    def _descend(self, seeds: list[torch.Tensor], steps: int,
                 first: bool) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        p = self.problem
        H = self.starts
        lo, hi = torch.log(p.low), torch.log(p.high)
        if first:  # the base point and random ones
            v0 = torch.cat([p.base_values()[None], p.sample_values(H - 1, self.gen)])
        else:  # restart: half near the incumbent (log-normal jitter), half anywhere
            near = self.best.values[None] * torch.exp(0.2 * torch.randn(H // 2, len(lo), generator=self.gen,
                                                                         dtype=torch.float64))
            v0 = p.round(torch.cat([self.best.values[None], near, p.sample_values(H - 1 - H // 2, self.gen)]))[:H]
        z = ((torch.log(v0) - lo) / (hi - lo)).clamp(0.05, 0.95)
        u = torch.logit(z).clone().requires_grad_(True)
        a, b = p.layer_weights(1.0, 1.0)
        state = []
        for li, sp in enumerate(p.spaces):
            g = seeds[li].repeat(H, 1)  # row h*k + j: start j of hardware h
            k = len(seeds[li])
            axis = sp.layout.split(g)[2]
            fixed_log, rest, logits = sp.log_split(g)
            logits.requires_grad_(True)
            state.append(dict(g=g, k=k, axis=axis, batch=sp.decode(g), fixed_log=fixed_log, rest=rest,
                              logits=logits, hidx=torch.arange(H).repeat_interleave(k),
                              sel=torch.zeros(H, dtype=torch.int64)))
        opt = torch.optim.Adam([{"params": [u], "lr": self.lr_hw},
                                {"params": [s["logits"] for s in state], "lr": self.lr_map}])
        counts = p.counts
        net = None
        # A run bounded by time alone gives the descent at most 40% of the time left, so rounding
        # and search always run. A run bounded by --designs must not read the clock here: a
        # descent cut by the time it took made the same seed and --designs give different
        # designs on a loaded machine. Both stop at the deadline itself.
        share = self.elapsed() + 0.4 * max(0.0, self.seconds - self.elapsed())
        for step in range(steps):
            if self.past_deadline() or (self.max_designs is None and self.elapsed() > share):
                break
            mu = 10.0 ** (3 * step / max(1, steps - 1))  # penalty schedule 1 -> 1000, fixed once
            x = torch.exp(lo + (hi - lo) * torch.sigmoid(u))
            hw = p.hardware(x)
            loss = 0.0
            e_tot = c_tot = pen_tot = 0.0
            cut = False
            for li, s in enumerate(state):
                if li and self.past_deadline():  # a step over a large network takes seconds
                    cut = True
                    break
                k = s["k"]
                mask = torch.zeros(H * k, dtype=torch.bool)
                mask[torch.arange(H) * k + s["sel"]] = True
                rows = _grad_on_rows(hw.take(s["hidx"]), mask)
                logf = p.spaces[li].log_factors(s["fixed_log"], s["rest"], s["logits"])
                lt, ls = p.spaces[li].place(logf, s["axis"], 0.0)
                bt = s["batch"]
                c = p.models[li].relaxed(lt, ls, bt.order, bt.keep, hw=rows, spatial_order=bt.spatial_order)
                cap = rows.capacity if rows.capacity.dim() == 2 else rows.capacity[None]
                capn = torch.where(torch.isfinite(c.capacity_excess), c.capacity_excess / cap.clamp(max=1e12),
                                   torch.zeros_like(c.capacity_excess))
                pen = torch.relu(capn).sum(1) + torch.relu(c.fanout_excess).flatten(1).sum(1)
                row = a * torch.log(c.energy) + b * torch.log(c.cycles) + mu * pen
                loss = loss + row.sum()
                with torch.no_grad():
                    s["sel"] = row.view(H, k).argmin(1)
                pick = torch.arange(H) * k + s["sel"]
                e_tot = e_tot + counts[li] * c.energy[pick]
                c_tot = c_tot + counts[li] * c.cycles[pick]
                pen_tot = pen_tot + pen[pick]
            if cut:  # the step is dropped whole; the last complete step's ranking stands
                break
            area = hw.total_area / 1e6
            net = p.log_objective(e_tot, c_tot, area) + mu * (p.violation(e_tot, c_tot, area) + pen_tot)
            loss = loss + net.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            x = torch.exp(lo + (hi - lo) * torch.sigmoid(u))
            out = []
            for h in range(H):
                pools = []
                for li, s in enumerate(state):
                    sp = p.spaces[li]
                    rows = slice(h * s["k"], (h + 1) * s["k"])
                    logf = sp.log_factors(s["fixed_log"][rows], s["rest"][rows], s["logits"][rows])
                    code = sp.to_code(s["g"][rows])
                    lay = sp.layout
                    logb = torch.log(torch.tensor(sp.workload.bounds, dtype=torch.float64).clamp(min=2))
                    code[:, : lay.D * lay.S] = (logf / logb[None, :, None]).flatten(1)
                    rounded = sp.from_code(code)
                    rf, _, _, _ = lay.split(rounded)
                    _, order, axis, keep = lay.split(s["g"][rows])
                    pools.append(torch.cat([rf.flatten(1), order.flatten(1), axis.flatten(1), keep.flatten(1)], 1))
                out.append((x[h], pools))
        rank = torch.argsort(net.detach()) if net is not None else torch.arange(H)
        return [out[int(i)] for i in rank]

    # ---- phase 3: hardware local search ------------------------------------------------------------
    def _neighbours(self, values: torch.Tensor, ratio: float) -> torch.Tensor:
        """All single-parameter moves up and down by ``ratio`` (at least one unit for integers;
        PE-array sides move to the next size whose primes all divide some layer dimension) and
        all pairs (one up, one down), which trade e.g. buffer area for PEs at an area budget."""
        p = self.problem
        P = len(values)
        up = torch.where(p.integer, torch.maximum(torch.round(values * ratio), values + 1), values * ratio)
        dn = torch.where(p.integer, torch.minimum(torch.round(values / ratio), values - 1), values / ratio)
        for i, grid in p.pe_grids.items():
            above, below = grid[grid > values[i]], grid[grid < values[i]]
            up[i] = above[0] if len(above) else values[i]
            dn[i] = below[-1] if len(below) else values[i]
        moves = []
        for i in range(P):
            for v in (up, dn):
                m = values.clone()
                m[i] = v[i]
                moves.append(m)
            for j in range(P):
                if j != i:
                    m = values.clone()
                    m[i], m[j] = up[i], dn[j]
                    moves.append(m)
        nb = p.round(torch.stack(moves))
        nb = torch.unique(nb, dim=0)
        return nb[(nb != values[None]).any(1)]

    def _hardware_search(self, d: Design) -> None:
        """Steepest descent over hardware neighbours: every neighbour gets a short mapping
        polish from the incumbent's pools (mappings must adapt to a new PE array before the
        neighbour can be judged), the best few a longer one; the step shrinks when none improves."""
        p = self.problem
        ratio = 2.0 ** 0.5
        weights = p.layer_weights(d.totals["energy_pJ"], d.totals["latency_cycles"])
        while not self.out_of_time() and ratio > 2.0 ** (1 / 9):
            nb = self._neighbours(d.values, ratio)
            if not len(nb):
                break
            quick = []
            for v in nb:
                if self.out_of_time():
                    return
                quick.append(p.design(v, [x[: self.screen_pool] for x in d.pools], self.gen, 2, weights=weights,
                                      stop=self.past_deadline))
                self.evaluated += 1
            top = sorted(range(len(quick)), key=lambda i: quick[i].rank)[: self.screened]
            best = None
            for i in top:
                if self.out_of_time():
                    return
                n = p.design(nb[i], [torch.cat([a, b]) for a, b in zip(quick[i].pools, d.pools)], self.gen,
                             self.polish_steps // 2, stop=self.past_deadline)
                self.offer(n)
                if n.rank < d.rank and (best is None or n.rank < best.rank):
                    best = n
            if best is None:
                ratio = ratio ** 0.5
            else:
                d = best


