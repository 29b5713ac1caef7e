"""Fixity: audits of every replica (audit.py, verify.py), repair from a good copy (repair.py), reports."""
