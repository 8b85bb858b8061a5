"""The requester's side of the measures' procedures: enrolment (a key and a certificate request
made on the department's own machine), applications for conditional resources, and reports of
doubted results.
"""
