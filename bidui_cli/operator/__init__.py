"""The node operator's commands: ``bidui provider ...`` (init, load, serve, the PKI and keys,
decisions on applications and discrepancy reports, the working-day calendar).
"""
