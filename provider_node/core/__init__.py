"""What every room of the node shares, and which imports nothing of the node above it: the
node's errors, the request's vocabulary (modes, answers, the header), background chores, and the
working-day calendar.
"""
