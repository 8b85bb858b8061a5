"""The ``bidui`` command: the top layer, over the node, the SDK and the comparator.

``main.py`` is the ``bidui`` group; each role's commands are their own module:

- requesting departments: ``department.py`` (``keys request``, ``apply``, ``applications``) and
  ``compare.py``, sharing the node options of ``connection.py``;
- node operators: ``provider.py`` (``init``, ``load``), ``serve.py``, ``rotation.py``
  (``pki rotate-ca``, ``keys rotate``), ``enrolment.py`` (``pki sign | list | revoke``) and
  ``decisions.py`` (``applications``, ``grants``), the governance actions sharing
  ``governance.py``;
- compliance officers: ``audit.py``; newcomers: ``demo.py``.

``terminal.py`` parses what users type and shapes what they read; ``errors.py`` makes every
mistake one line with exit code 2. Nothing below imports this package: the libraries never depend
on their command line (checked by import-linter, pyproject.toml).
"""
