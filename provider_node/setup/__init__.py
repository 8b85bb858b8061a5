"""Setting a node up and starting it: the node folder, the running node assembled from its
configuration, the rotation of its CA and secrets, and the sample source of a new node.

The top of the node: it may use every other room, and no room uses it.
"""
