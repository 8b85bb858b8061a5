"""The node's database: SQLAlchemy engines and sessions with bounded waits, the models of every
table, the gate that bounds the request path's wait on the store, and the Alembic migrations.
"""
