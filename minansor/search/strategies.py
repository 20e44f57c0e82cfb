"""Every search strategy by name: `SearchConfig.search` picks one (strategy.py says what one is)."""

from __future__ import annotations

from .evolve import EvolutionarySearch
from .random_search import RandomSearch

STRATEGIES = {"evolutionary": EvolutionarySearch, "random": RandomSearch}
