"""Disaster recovery: restore AIPs from any tier (the restic off-site tier included) with every byte verified,
rebuild the catalog from a tier, compare two catalogs, and restore drills that prove it on a sample."""
