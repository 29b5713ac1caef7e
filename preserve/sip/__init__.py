"""Submission packages: open, check and read scan batches (folder, zip, BagIt bag)."""
