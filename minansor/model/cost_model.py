"""Cost models: score programs from their per-store feature matrices (higher = faster).

`update` takes every program measured so far with its cost in seconds (inf = failed) and
retrains from scratch, as Ansor does each round. The XGBoost model is Ansor's "pack-sum"
regression: each store row gets a prediction, a program's score is the sum over its rows,
and the squared error of that sum against the program's normalized throughput
(best cost / cost, in (0, 1]) is weighted by the throughput, so the fast programs, the ones
the search cares about, are fitted best.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from ..config import SearchConfig


class CostModel(Protocol):
    def update(self, features: list[np.ndarray], costs: np.ndarray) -> None: ...

    def predict(self, features: list[np.ndarray]) -> np.ndarray: ...

    @property
    def trained(self) -> bool: ...


def normalized_throughput(costs: np.ndarray) -> np.ndarray:
    """best cost / cost: 1 for the fastest program, 0 for a failed one."""
    costs = np.asarray(costs, dtype=float)
    finite = np.isfinite(costs) & (costs > 0)
    if not finite.any():
        return np.zeros_like(costs)
    best = costs[finite].min()
    return np.where(finite, best / np.where(finite, costs, 1.0), 0.0)


class RandomModel:
    """Scores at random: the search without a model (an ablation baseline)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    trained = True  # the ablation evolves on these scores from the first round

    def update(self, features: list[np.ndarray], costs: np.ndarray) -> None:
        pass

    def predict(self, features: list[np.ndarray]) -> np.ndarray:
        return self.rng.uniform(size=len(features))


class XGBModel:
    """Pack-sum XGBoost regression of normalized throughput, with the `xgb_*` parameters of the config."""

    def __init__(self, rng: np.random.Generator, config: SearchConfig):
        self.rng = rng
        self.min_samples = config.model_min_samples
        self.max_rounds = config.xgb_max_rounds
        self.early_stopping = config.xgb_early_stopping_rounds
        self.params = {"max_depth": config.xgb_max_depth, "gamma": config.xgb_gamma,
                       "min_child_weight": config.xgb_min_child_weight, "eta": config.xgb_eta,
                       "seed": config.xgb_seed, "nthread": 1, "disable_default_eval_metric": 1, "base_score": 0.0}
        self.booster = None

    @property
    def trained(self) -> bool:
        return self.booster is not None

    @staticmethod
    def _stack(features: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        rows = np.concatenate(features, axis=0)
        group = np.repeat(np.arange(len(features)), [len(f) for f in features])
        return rows, group

    def update(self, features: list[np.ndarray], costs: np.ndarray) -> None:
        import xgboost as xgb

        if len(features) < self.min_samples:
            return
        labels = normalized_throughput(costs)
        weights = np.maximum(labels, 1e-3)
        rows, group = self._stack(features)
        n_programs = len(features)
        dtrain = xgb.DMatrix(rows)

        def pack_sum(predictions: np.ndarray) -> np.ndarray:
            return np.bincount(group, weights=predictions, minlength=n_programs)

        def objective(predictions, _dtrain):
            residual = pack_sum(predictions) - labels
            return (weights * residual)[group], weights[group]

        def metric(predictions, _dtrain):
            residual = pack_sum(predictions) - labels
            return "pack-sum-rmse", float(np.sqrt(np.average(residual ** 2, weights=weights)))

        self.booster = xgb.train(self.params, dtrain, num_boost_round=self.max_rounds, obj=objective,
                                 custom_metric=metric, evals=[(dtrain, "train")],
                                 early_stopping_rounds=self.early_stopping, verbose_eval=False)

    def predict(self, features: list[np.ndarray]) -> np.ndarray:
        if self.booster is None:
            return self.rng.uniform(size=len(features))  # no data yet: behave like random search
        import xgboost as xgb

        rows, group = self._stack(features)
        predictions = self.booster.predict(xgb.DMatrix(rows), iteration_range=(0, self.booster.best_iteration + 1))
        return np.bincount(group, weights=predictions, minlength=len(features))


class SharedModel:
    """One model for all the tasks of a network, as in Ansor and MetaSchedule: every task
    hands in its own measured programs, with costs normalized within the task (1 = that task's
    best), and the model is retrained on all of them. A task's first rounds are then ranked by
    what the other tasks taught it instead of being drawn at random."""

    def __init__(self, model: CostModel):
        self.model = model
        self._data: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}

    def for_task(self, task_name: str) -> "TaskModel":
        return TaskModel(self, task_name)

    def update_task(self, task_name: str, features: list[np.ndarray], costs: np.ndarray) -> None:
        self._data[task_name] = (features, np.asarray(costs, dtype=float))
        self._train()

    def pretrain(self, measured: dict[str, tuple[list[np.ndarray], np.ndarray]]) -> None:
        """Learn first from tasks measured elsewhere (a records library): name -> (features, seconds);
        they stay in the training data of every later update."""
        for name, (features, costs) in measured.items():
            self._data[name] = (features, np.asarray(costs, dtype=float))
        if measured:
            self._train()

    def _train(self) -> None:
        features_all = [f for fs, _ in self._data.values() for f in fs]
        # Per-task normalization, expressed as costs: best / cost within each task.
        labels = np.concatenate([normalized_throughput(c) for _, c in self._data.values()])
        self.model.update(features_all, np.where(labels > 0, 1.0 / np.maximum(labels, 1e-12), np.inf))


class TaskModel:
    """A task's handle on a SharedModel, with the CostModel interface a search strategy uses."""

    def __init__(self, shared: SharedModel, task_name: str):
        self.shared, self.task_name = shared, task_name

    @property
    def trained(self) -> bool:
        return self.shared.model.trained

    def update(self, features: list[np.ndarray], costs: np.ndarray) -> None:
        self.shared.update_task(self.task_name, features, costs)

    def predict(self, features: list[np.ndarray]) -> np.ndarray:
        return self.shared.model.predict(features)


# (the search's random stream, the config: its model_min_samples and the model's own fields) -> a fresh model.
CostModelFactory = Callable[[np.random.Generator, SearchConfig], CostModel]

# SearchConfig.cost_model names one of these; register another by adding it (examples/custom_cost_model.py).
COST_MODELS: dict[str, CostModelFactory] = {
    "xgb": XGBModel,
    "random": lambda rng, config: RandomModel(rng),
}


def make_cost_model(rng: np.random.Generator, config: SearchConfig) -> CostModel:
    """The model `config.cost_model` names."""
    return COST_MODELS[config.cost_model](rng, config)


def rank_correlation(predicted: np.ndarray, measured: np.ndarray) -> float:
    """Spearman's rho (ties broken by order); nan when either side is constant."""
    if (len(predicted) < 2 or not np.isfinite(predicted).all() or np.ptp(predicted) == 0
            or np.ptp(measured) == 0):
        return float("nan")
    ranks_p = np.argsort(np.argsort(predicted)).astype(float)
    ranks_m = np.argsort(np.argsort(measured)).astype(float)
    return float(np.corrcoef(ranks_p, ranks_m)[0, 1])
