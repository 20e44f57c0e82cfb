"""What is tuned, and where: targets, tasks (one PrimFunc each) and the named workloads."""
