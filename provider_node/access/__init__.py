"""What a department may do, and how much (articles 24, 25, 31, 34): the policy that reads
the catalog's facts and the department's grants, and the durable quotas that count its items.
"""
