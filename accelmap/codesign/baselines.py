"""Baselines for co-design: random hardware points, and Bayesian optimization (optuna) over the hardware space."""

from __future__ import annotations

import math

import torch

from accelmap.codesign.base import CoDesigner, register


@register
class RandomCoDesign(CoDesigner):
    """Random hardware (log-uniform in the ranges) with the best mappings the local search finds
    for each layer on it; keeps the best design."""

    name = "random"
    summary = "random hardware points, each with per-layer mapping search"
    per_layer = 16
    polish_steps = 10

    def search(self) -> None:
        p = self.problem
        while not self.out_of_time():  # the base point was the run's first design
            v = p.sample_values(1, self.gen)[0]
            pools = p.seed_pools(self.per_layer, self.gen, v)
            self.offer(p.design(v, pools, self.gen, self.polish_steps, stop=self.past_deadline))


@register
class BayesianCoDesign(CoDesigner):
    """Bayesian optimization over the hardware with the mapper inside: optuna's TPE sampler
    proposes hardware points (PE sides on their useful-size grid, sizes on a log scale), each
    is scored after per-layer mapping search, as in the random baseline."""

    name = "bayesian"
    summary = "Bayesian optimization (optuna TPE) over hardware, per-layer mapping search inside"
    per_layer = 16
    polish_steps = 10

    def search(self) -> None:
        try:
            import optuna
        except ImportError:
            from accelmap.errors import AccelmapError

            raise AccelmapError("the bayesian method needs optuna (pip install optuna)", field="--method") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        p = self.problem
        params = p.hw_space.parameters
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=self.seed))
        dist = {}
        for i, prm in enumerate(params):
            if i in p.pe_grids:
                dist[prm.name] = optuna.distributions.CategoricalDistribution([int(x) for x in p.pe_grids[i].tolist()])
            elif prm.integer:
                dist[prm.name] = optuna.distributions.IntDistribution(int(math.ceil(prm.low)), int(prm.high), log=True)
            else:
                dist[prm.name] = optuna.distributions.FloatDistribution(prm.low, prm.high, log=True)
        if self.base is not None:  # the run's first design: told to the sampler, not evaluated again
            base = self.base.values
            study.add_trial(optuna.trial.create_trial(
                params={prm.name: (int(base[i]) if prm.integer else float(base[i])) for i, prm in enumerate(params)},
                distributions=dist, value=self.base.score))
        while not self.out_of_time():
            trial = study.ask(dist)
            vals = [float(trial.params[prm.name]) for prm in params]
            v = torch.tensor(vals, dtype=torch.float64)
            d = p.design(v, p.seed_pools(self.per_layer, self.gen, v), self.gen, self.polish_steps,
                         stop=self.past_deadline)
            self.offer(d)
            study.tell(trial, d.score)
