"""Who is calling (article 34): the department in a verified client certificate, the node's
development PKI, the certificates the operator issued and revoked, and enrolment.
"""
