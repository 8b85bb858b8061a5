"""The requesting department's commands: ``compare``, ``verify``, ``keys request``, ``apply``,
``applications`` and ``discrepancy``.
"""
