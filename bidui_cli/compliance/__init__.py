"""The compliance officer's commands: ``bidui audit ...`` (verify, export, checkpoints, the
quarterly report).
"""
