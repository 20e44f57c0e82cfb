import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from minansor.space.annotate import factorizations, sample_knob
from minansor.space.steps import Knob

extents = st.integers(min_value=1, max_value=600)
parts = st.integers(min_value=1, max_value=4)
caps = st.sampled_from([1, 4, 16, 64])


@given(extents, parts, caps)
@settings(max_examples=200, deadline=None)
def test_every_factorization_multiplies_to_the_extent_with_capped_innermost(extent, n, cap):
    options = factorizations(extent, n, cap)
    assert len(set(options)) == len(options)
    for factors in options:
        assert len(factors) == n
        assert math.prod(factors) == extent
        assert factors[-1] <= cap


@given(st.integers(min_value=1, max_value=120), st.integers(min_value=1, max_value=3), caps)
@settings(max_examples=100, deadline=None)
def test_every_factorization_is_reachable(extent, n, cap):
    brute = {f for f in itertools.product(range(1, extent + 1), repeat=n)
             if math.prod(f) == extent and f[-1] <= cap}
    assert set(factorizations(extent, n, cap)) == brute


def test_sampling_reaches_every_factorization():
    import numpy as np

    knob = Knob("tile x", "x", extent=12, parts=3, max_innermost=64)
    rng = np.random.default_rng(0)
    seen = {sample_knob(knob, None, rng) for _ in range(2000)}
    assert seen == set(factorizations(12, 3, 64))
    assert all(knob.admits(v) for v in seen)
    assert not knob.admits((2, 2, 2)) and not knob.admits((12, 1)) and not knob.admits((0, 12, 1))
