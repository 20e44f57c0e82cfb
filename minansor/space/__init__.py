"""The search space of one task: steps, sketch rules (CPU and GPU), programs, random annotation."""
