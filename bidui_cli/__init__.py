"""The ``bidui`` command: the top layer, over the node, the SDK and the comparator.

``main.py`` is the ``bidui`` group; each role's commands are their own module: ``compare.py``
(requesting departments), ``provider.py`` and ``serve.py`` (node operators), ``audit.py``
(compliance officers), ``demo.py`` (newcomers). Nothing below imports this package: the
libraries never depend on their command line (checked by import-linter, pyproject.toml).
"""
