"""Recipe: plug in your own cost model, here a scikit-learn regressor, through the config.

A cost model has three members (cost_model.CostModel): `update(features, costs)` retrains on
every program measured so far (one feature matrix per program, one row per store; cost in
seconds, inf = failed), `predict(features)` scores programs (higher = faster), and `trained`.
Registering a factory in `COST_MODELS` makes its name a value of `SearchConfig.cost_model`,
so `--set cost_model=sklearn-gbr` works everywhere, ablations included.

    python examples/custom_cost_model.py --workload yolo-conv-26x26-128-128-3x3 --trials 128
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np

from minansor.model.cost_model import COST_MODELS, normalized_throughput
from minansor.tasks.workloads import make_task
from minansor.tune import tune_task

import recipe


class SklearnModel:
    """Gradient-boosted trees from scikit-learn on the per-program sum of store features (the
    pack-sum idea with the sum taken before the model rather than after it)."""

    def __init__(self, rng: np.random.Generator, min_samples: int):
        self.rng, self.min_samples = rng, min_samples
        self.regressor = None

    @property
    def trained(self) -> bool:
        return self.regressor is not None

    @staticmethod
    def _rows(features: list[np.ndarray]) -> np.ndarray:
        return np.stack([f.sum(axis=0) for f in features])

    def update(self, features: list[np.ndarray], costs: np.ndarray) -> None:
        from sklearn.ensemble import HistGradientBoostingRegressor

        if len(features) < self.min_samples:
            return
        seed = int(self.rng.integers(2**31))
        self.regressor = HistGradientBoostingRegressor(max_iter=100, min_samples_leaf=2, random_state=seed)
        self.regressor.fit(self._rows(features), normalized_throughput(costs))

    def predict(self, features: list[np.ndarray]) -> np.ndarray:
        if self.regressor is None:
            return self.rng.uniform(size=len(features))
        return self.regressor.predict(self._rows(features))


COST_MODELS["sklearn-gbr"] = lambda rng, config: SklearnModel(rng, config.model_min_samples)


def main(argv: list[str] | None = None) -> int:
    parser = recipe.parser(__doc__, "work_dirs/examples/custom_cost_model", trials=128)
    args = parser.parse_args(argv)
    base = recipe.config(args)
    task = make_task(args.workload)
    for model in ("xgb", "sklearn-gbr"):
        config = dataclasses.replace(base, cost_model=model)
        result = tune_task(task, config, os.path.join(args.work_dir, model), args.trials, progress=False)
        rho = [r["rank_correlation"] for r in result.rounds if np.isfinite(r["rank_correlation"])]
        print(f"{model:12s} best {result.best_ms:.4f} ms after {result.trials} trials, "
              f"median rank correlation {np.median(rho) if rho else float('nan'):.2f}, "
              f"check {'ok' if result.check.ok else 'FAILED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
