"""Conditional sharing and its records (articles 24-27, 31, 36): applications and grants,
discrepancy reports, each an audited governance action, and the quarterly report.
"""
