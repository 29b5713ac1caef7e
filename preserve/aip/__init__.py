"""Archival information packages: layout, METS, PREMIS, descriptive metadata, signature."""
