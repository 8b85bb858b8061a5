"""The path of one comparison request, from its checked header to its audited answer.

``node`` holds every check between a request and its answer; ``checks`` the request's own
fields; ``answers`` the three answers (match bits, verification, count); ``sessions`` and
``session_closing`` the blinded comparisons between their two steps; ``audit_trail`` the audit
records of the path, written fail closed.
"""
