"""The node's resources (articles 7-10, 24): the catalog as declared, the per-resource keys,
and the match indexes built from each resource's source.
"""
