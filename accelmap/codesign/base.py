"""The co-design algorithm interface and its registry."""

from __future__ import annotations

import time
from typing import Callable, ClassVar

import torch

from accelmap.codesign.problem import CoDesignProblem, CoDesignResult, Design
from accelmap.registry import Registry

# ---- registry of co-design algorithms ------------------------------------------------------------
Progress = Callable[[float, "Design"], None]


class CoDesigner:
    """Turns a problem, a wall-time budget and a seed into a result; subclasses register."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def __init__(self, problem: CoDesignProblem, seconds: float, seed: int, on_improve: Progress | None = None,
                 designs: int | None = None, initial: tuple[Design, ...] = ()):
        """Stops after ``seconds`` or ``designs`` evaluated designs, whichever comes first; a
        run that ends by ``designs`` is reproducible from its seed (a time cut-off is not: so
        nothing but the ``seconds`` deadline may read the clock to decide what to search).
        The base design is evaluated first, then ``initial`` designs (e.g. neighbours on a
        front) are re-scored as they are and warm-start the search."""
        self.problem, self.seconds, self.seed, self.max_designs = problem, seconds, seed, designs
        self.initial = initial
        self.gen = torch.Generator().manual_seed(seed)
        self.on_improve = on_improve
        self.best: Design | None = None
        self.base: Design | None = None  # the base architecture's design, evaluated first
        self.trace: list[tuple[float, float, bool]] = []
        self.evaluated = 0
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def past_deadline(self) -> bool:
        """The wall-time budget is spent (checked inside long loops: descent steps, polish steps)."""
        return self.elapsed() > self.seconds

    def out_of_time(self) -> bool:
        return self.past_deadline() or (self.max_designs is not None and self.evaluated >= self.max_designs)

    def offer(self, d: Design) -> None:
        """Count a design and keep it if it beats the best (all layers mapped first, then the
        budgets' violation, then score)."""
        self.evaluated += 1
        if self.best is None or d.rank < self.best.rank:
            self.best = d
            self.trace.append((self.elapsed(), d.score, d.feasible))
            if self.on_improve:
                self.on_improve(self.elapsed(), d)

    def run(self) -> CoDesignResult:
        interrupted = False
        try:
            self.problem.warm_up()  # a kernel compile is not search time
            self.t0 = time.perf_counter()
            # the base design first, whatever the deadline: a short run still returns it
            self.base = self.problem.base_design(self.gen, stop=self.past_deadline)
            self.offer(self.base)
            for d in self.initial:  # exactly as they were (a polish for the new objective could break
                if d is not None and not self.out_of_time():  # a budget the design met)
                    self.offer(self.problem.design(d.values, [g[None] for g in d.genomes], self.gen, 0))
            if not self.out_of_time():
                self.search()
        except KeyboardInterrupt:
            interrupted = True
        return CoDesignResult(self.name, self.best, self.elapsed(), self.evaluated, tuple(self.trace), interrupted)

    def search(self) -> None:
        raise NotImplementedError


CODESIGNERS: Registry[type[CoDesigner]] = Registry("co-design method", "--method")  # filled by accelmap.codesign
register = CODESIGNERS.register
get_codesigner = CODESIGNERS.get
