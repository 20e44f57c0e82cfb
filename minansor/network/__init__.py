"""Whole networks in TVM Relax: import, graph optimization, task extraction, the tuned build,
end-to-end timing and the check against the source framework."""
