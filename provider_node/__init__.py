"""bidui provider node: the data service node a providing department runs beside its database."""
