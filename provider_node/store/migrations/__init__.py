"""Alembic migrations of the provider node's store, run by
``provider_node.store.engine.migrate``."""
