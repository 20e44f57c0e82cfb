import dataclasses
import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test processes share this machine's cores (make test runs pytest -n 2): each runs its
    # TVM kernels on one thread, or their thread pools, spinning at every parallel loop's
    # barrier, would take turns on the same cores. Set before minansor is imported.
    os.environ.setdefault("TVM_NUM_THREADS", "1")

from minansor.config import SearchConfig


def _fast_config() -> SearchConfig:
    """Measurement settings for tests: one short repeat, small rounds."""
    return dataclasses.replace(SearchConfig(), number=1, repeat=1, min_repeat_ms=1, trials_per_round=8,
                               population=48, generations=2, min_fresh_random=16,
                               build_timeout_s=60, run_timeout_s=30)


@pytest.fixture
def fast_config() -> SearchConfig:
    return _fast_config()


@pytest.fixture(scope="module")
def fast_config_module() -> SearchConfig:
    """The same, for module-scoped fixtures."""
    return _fast_config()
