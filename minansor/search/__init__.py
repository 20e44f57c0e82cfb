"""Search strategies over a space: the interface, evolutionary search with its mutators, random search."""
