"""The tamper-evident audit log (articles 34, 35): the record format and its hash chain, the
log that appends and verifies, signed checkpoints of its head, and the operator's own records.
"""
