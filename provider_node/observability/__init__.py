"""What the node shows of itself: Prometheus metrics, the values computed at scrape time,
the ``/metrics`` endpoint, and the operations log's view of refused handshakes (article 34).
"""
