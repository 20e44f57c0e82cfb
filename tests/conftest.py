import dataclasses

import pytest

from minansor.config import SearchConfig


@pytest.fixture
def fast_config() -> SearchConfig:
    """Measurement settings for tests: one short repeat, small rounds."""
    return dataclasses.replace(SearchConfig(), number=1, repeat=1, min_repeat_ms=1, trials_per_round=8,
                               population=48, generations=2, min_fresh_random=16,
                               build_timeout_s=60, run_timeout_s=30)
