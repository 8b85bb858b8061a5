"""The ``bidui`` command: the top layer, over the node, the SDK and the comparator.

``main.py`` is the ``bidui`` group; each role's commands are a room of their own, and the rooms
never import each other (the layer contract in pyproject.toml):

- ``department/``: requesting departments: ``compare``, ``verify`` (sharing ``streamed`` and the
  node options of ``connection``), ``keys request``, ``apply``, ``applications`` (``access``),
  ``discrepancy`` (``discrepancies``);
- ``operator/``: node operators: ``provider`` (``init``, ``load``), ``serve``, ``rotation``
  (``pki rotate-ca``, ``keys rotate``), ``enrolment`` (``pki sign | list | revoke``),
  ``decisions`` (``applications``, ``grants``), ``discrepancies``, ``calendar``, the governance
  actions sharing ``governance``; and ``demo`` for newcomers (a node and its requests);
- ``compliance/``: compliance officers: ``audit``.

A requesting department's install (``requester/pyproject.toml``) holds ``department/`` and the
shared pieces only; ``main.node_commands`` then offers ``provider``, ``audit`` and ``demo`` as
commands that say how to install the node.

What more than one role uses lies beside them: ``terminal.py`` parses what users type and
shapes what they read, ``discrepancy_text.py`` shows a report's standing, ``options.py`` the
``--config`` option, ``errors.py`` makes every mistake one line with exit code 2. Nothing below
imports this package: the libraries never depend on their command line.
"""
