"""The requester's files: CSV of records read and written back with one answer per row, and
files of any size checked and answered in a stream.
"""
