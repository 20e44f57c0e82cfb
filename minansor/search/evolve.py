"""Evolutionary search: Ansor's search round, guided by a learned cost model.

One round (`propose`):
  1. initial population: the best programs measured so far (a share of the population) plus
     fresh random programs of every sketch;
  2. for a few generations, score the population with the cost model and breed the next one:
     roulette selection on the predicted score, then mutation (one decision changed), crossover
     between parents of the same sketch (block by block), or a plain copy;
  3. keep the best-scored programs that were never measured; hand out the top ones, except for
     a local-refinement share (the best-scored single mutations of the best measured programs)
     and an eps-greedy share of fresh random programs that keeps the model honest.

After measurement, `observe` retrains the model on every program measured so far. Until the
model has enough data to train, a round is plain random sampling. Programs are
plain (sketch, decisions) data, so all of this is bookkeeping over dictionaries; the only TVM
work is replaying a program to read its features.
"""

from __future__ import annotations

import numpy as np
from tvm.s_tir import Schedule

from ..config import SearchConfig
from ..model.cost_model import CostModel, make_cost_model
from ..model.features import make_extractor
from ..space.program import Applied, Program
from ..space.search_space import SearchSpace
from ..space.steps import InvalidProgram
from .mutate import crossover, mutate, parse_weights
from .strategy import Proposal, sample_new
from .trace import RoundStats, Stopwatch


class EvolutionarySearch:
    def __init__(self, space: SearchSpace, config: SearchConfig, rng: np.random.Generator,
                 model: CostModel | None = None):
        """`model`: a model shared with other tasks (see cost_model.SharedModel); by default
        the search trains its own."""
        self.space, self.config, self.rng = space, config, rng
        self.model = model or make_cost_model(rng, config)
        self.extract = make_extractor(config.features, space.task)
        self.weights = parse_weights(config.gpu_mutators if space.gpu else config.mutators)
        self.measured: dict[str, tuple[Applied, float]] = {}  # program key -> (program, seconds)
        self._features: dict[str, np.ndarray] = {}
        self.prior: list[tuple[np.ndarray, float]] = []  # (features, seconds) measured elsewhere (warm_start)
        self._lineage: dict[str, tuple[str, tuple[str, ...]]] = {}  # key -> (origin, parents), this round
        self.clock = Stopwatch()  # this round's time per phase (trace.py)
        self.stats = RoundStats()

    # ------------------------------------------------------------ model

    def features(self, applied: Applied) -> np.ndarray:
        key = applied.program.key()
        if key not in self._features:
            with self.clock.phase("features"):
                self._features[key] = self.extract(applied)
        return self._features[key]

    def score(self, population: list[Applied]) -> np.ndarray:
        if not population:
            return np.zeros(0)
        with self.clock.phase("model"):
            return self.model.predict([self.features(a) for a in population])

    def observe(self, measured: list[tuple[Applied, float]]) -> None:
        """Record measured programs (seconds; inf = failed) and retrain the model on all of them."""
        for applied, seconds in measured:
            self.measured[applied.program.key()] = (applied, seconds)
        self._train()
        # Only measured programs' features are worth keeping across rounds.
        self._features = {k: v for k, v in self._features.items() if k in self.measured}

    def warm_start(self, schedules: list[tuple[Schedule, float]]) -> None:
        """Teach the model programs measured elsewhere (MetaSchedule's records, an earlier run of
        another search): scheduled TIR and seconds. They are outside this search space, so they
        are training data only, never mutated or proposed; with enough of them the very first
        round is already ranked by the model."""
        for sch, seconds in schedules:
            self.prior.append((self.extract(Applied(Program(-1, ()), sch, ())), seconds))
        self._train()

    def _train(self) -> None:
        keys = list(self.measured)
        with self.clock.phase("model"):
            self.model.update([self.features(self.measured[k][0]) for k in keys] + [f for f, _ in self.prior],
                              np.array([self.measured[k][1] for k in keys] + [s for _, s in self.prior]))

    # ------------------------------------------------------------ one round

    def _fresh(self, count: int, exclude: set[str]) -> list[Applied]:
        with self.clock.phase("sampling"):
            return self._sample(count, exclude)

    def _sample(self, count: int, exclude: set[str]) -> list[Applied]:
        out = sample_new(self.space, self.rng, count, exclude, self.config.max_sample_attempts, self.stats,
                         self.config.sample_patience)
        for applied in out:
            self._lineage[applied.program.key()] = ("random", ())
        return out

    def _mutants(self, count: int, fresh: list[Applied], seen: set[str]) -> list[Applied]:
        """Up to `count` new programs mutated from the measured and `fresh` ones, parents drawn
        uniformly: how a round is filled before the model can rank anything."""
        population = [a for a, seconds in self.measured.values() if np.isfinite(seconds)] + fresh
        exclude = seen | set(self.measured) | {a.program.key() for a in fresh}
        out: list[Applied] = []
        if not population:
            return out
        uniform = np.full(len(population), 1 / len(population))
        cache = {a.program.key(): a for a in population}
        with self.clock.phase("evolution"):
            for _ in range(count * self.config.max_sample_attempts):
                if len(out) == count:
                    break
                child = self._child(population, uniform, cache)
                if child is not None and child.program.key() not in exclude:
                    exclude.add(child.program.key())
                    out.append(child)
        return out

    def population_size(self, count: int) -> int:
        """The population evolved for a round measuring `count` programs: the configured one, or
        (population_per_trial) one sized to the round, so that a round of 4 does not breed as
        many programs as a round of 64."""
        c = self.config
        if not c.population_per_trial:
            return c.population
        return min(c.population, max(c.min_fresh_random, c.population_per_trial * count))

    def initial_population(self, size: int | None = None) -> list[Applied]:
        c = self.config
        size = size or c.population
        ranked = sorted(self.measured.values(), key=lambda item: item[1])
        best = [applied for applied, seconds in ranked if np.isfinite(seconds)]
        best = best[:int(size * c.init_measured_ratio)]
        for applied in best:
            self._lineage[applied.program.key()] = ("copy", ())
        fresh_count = max(size - len(best), c.min_fresh_random)
        return best + self._fresh(fresh_count, {a.program.key() for a in best})

    def _child(self, population: list[Applied], probabilities: np.ndarray,
               cache: dict[str, Applied]) -> Applied | None:
        c = self.config
        parent = population[int(self.rng.choice(len(population), p=probabilities))]
        draw = self.rng.random()
        parents: tuple[str, ...] = (parent.program.key(),)
        if draw < c.crossover_probability:
            mates = [i for i, a in enumerate(population)
                     if a.program.sketch == parent.program.sketch and a.program != parent.program]
            if not mates:
                return None
            weights = probabilities[mates] / probabilities[mates].sum()
            mate = population[mates[int(self.rng.choice(len(mates), p=weights))]]
            program = crossover(parent.program, parent.knobs, mate.program, mate.knobs, self.rng)
            origin, parents = "crossover", parents + (mate.program.key(),)
        elif draw < c.crossover_probability + c.mutation_probability:
            program, name = mutate(parent.program, parent.knobs, self.weights, self.rng)
            origin = f"mutate:{name}"
        else:
            return parent
        return self._realize(program, origin, parents, cache)

    def _realize(self, program: Program | None, origin: str, parents: tuple[str, ...],
                 cache: dict[str, Applied]) -> Applied | None:
        """The applied program (from `cache` if met before), or None if there is none or TVM
        rejects it."""
        if program is None:
            return None
        key = program.key()
        if key not in cache:
            try:
                cache[key] = self.space.apply(program)
            except InvalidProgram:
                self.stats.tried_one(False)
                return None
            self.stats.tried_one(True)
            self._lineage.setdefault(key, (origin, parents))
        return cache[key]

    def refinements(self, count: int, exclude: set[str]) -> list[tuple[str, float, Applied]]:
        """Local refinement: the model's favourite single mutations of the best measured
        programs, none of them in `exclude`, as (key, score, program), best first. A round's
        fastest programs are most often one mutation away from a program already among the
        best measured (docs/concepts/evolution.md), so a share of every round goes to that
        neighbourhood whatever the evolution favours."""
        if count <= 0:
            return []
        ranked = sorted((item for item in self.measured.values() if np.isfinite(item[1])), key=lambda item: item[1])
        neighbours: dict[str, tuple[Applied, tuple[str, tuple[str, ...]]]] = {}  # key -> (program, lineage)
        cache: dict[str, Applied] = {}
        with self.clock.phase("evolution"):
            for parent, _ in ranked[:self.config.refine_parents]:
                for _ in range(self.config.refine_draws):
                    program, name = mutate(parent.program, parent.knobs, self.weights, self.rng)
                    lineage = (f"refine:{name}", (parent.program.key(),))
                    child = self._realize(program, *lineage, cache)
                    if child is not None and child.program.key() not in exclude:
                        neighbours.setdefault(child.program.key(), (child, lineage))
        children = list(neighbours.values())
        scores = self.score([child for child, _ in children])
        chosen = [(children[i][0].program.key(), float(scores[i]), children[i][0])
                  for i in np.argsort(-scores, kind="stable")[:count]]
        for key, _, _ in chosen:  # evolution may have bred the same program; this is why it is measured
            self._lineage[key] = neighbours[key][1]
        return chosen

    def next_generation(self, population: list[Applied], scores: np.ndarray, size: int | None = None) -> list[Applied]:
        positive = np.maximum(scores, 0.0)
        probabilities = positive / positive.sum() if positive.sum() > 0 else np.full(len(scores), 1 / len(scores))
        cache = {a.program.key(): a for a in population}
        size = size or self.config.population
        children: list[Applied] = []
        with self.clock.phase("evolution"):
            for _ in range(size * self.config.breeding_attempts):
                if len(children) == size:
                    break
                child = self._child(population, probabilities, cache)
                if child is not None:
                    children.append(child)
        return children

    def ancestry(self, key: str) -> tuple[dict, ...]:
        """The programs bred into `key` this round that were never measured, each with its origin
        and parents: with the measured parents found in the records, the program's whole lineage."""
        steps, todo, done = [], [key], set()
        while todo:
            current = todo.pop()
            origin, parents = self._lineage.get(current, ("random", ()))
            if current != key:
                steps.append({"program": current, "origin": origin, "parents": list(parents)})
            done.add(current)
            todo += [p for p in parents if p not in done and p not in self.measured and p in self._lineage]
        return tuple(steps)

    def propose(self, count: int, seen: set[str]) -> list[Proposal]:
        c = self.config
        self._lineage = {}
        self.stats = RoundStats()
        if not self.model.trained:  # nothing learned yet: evolving on random scores is random search
            fresh = self._fresh(count, seen | set(self.measured))
            if len(fresh) < count:  # a small space in which random annotation repeats itself
                fresh += self._mutants(count - len(fresh), fresh, seen)
            seen.update(a.program.key() for a in fresh)
            self.stats.population = self.stats.unique = len(fresh)
            return [Proposal(a, float("nan"), *self._lineage[a.program.key()]) for a in fresh]
        size = self.population_size(count)
        population = self.initial_population(size)
        self.stats.population = len(population)
        candidates: dict[str, tuple[float, Applied]] = {}  # unmeasured programs met this round
        for generation in range(c.generations + 1):
            scores = self.score(population)
            for applied, score in zip(population, scores):
                key = applied.program.key()
                if key not in seen and key not in self.measured:
                    candidates[key] = (float(score), applied)
            if generation < c.generations and population:
                population = self.next_generation(population, scores, size)
        n_random = int(round(c.eps_greedy * count))
        chosen = self.refinements(int(round(c.refine_share * count)), seen | set(self.measured))
        taken = {key for key, _, _ in chosen}
        self.stats.unique = len(set(candidates) | taken)
        ranked = sorted(((key, value) for key, value in candidates.items() if key not in taken), key=lambda kv: -kv[1][0])
        chosen += [(key, score, applied) for key, (score, applied) in ranked[:max(0, count - n_random - len(chosen))]]
        taken = {key for key, _, _ in chosen}
        randoms = self._fresh(count - len(chosen), seen | taken | set(self.measured))
        chosen += [(a.program.key(), float(s), a) for a, s in zip(randoms, self.score(randoms))]
        proposals = []
        for key, score, applied in chosen:
            seen.add(key)
            origin, parents = self._lineage.get(key, ("random", ()))
            proposals.append(Proposal(applied, score, origin, parents, self.ancestry(key)))
        return proposals
