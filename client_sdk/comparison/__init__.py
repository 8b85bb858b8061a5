"""One comparison, the requester's side: the catalog entry it runs against, canonicalised records
in chunks, hashed and blinded modes, the three answers, and the results aligned with the input.
"""
