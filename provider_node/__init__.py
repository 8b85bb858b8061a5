"""bidui provider node: the data service node a providing department runs next to its own database."""
