"""Reaching the node: the department's mTLS credentials and the checks of its own certificate,
one deadline per request with waits for a node that is away or busy, and the refusals that end a
call at once.
"""
