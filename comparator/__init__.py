"""bidui comparator: the pure crypto and matching core shared by the provider node and the SDK.

No network and no database imports belong in this package.
"""
