"""Proving a build reproducible: rebuild under variations (rebuild.py), or against a published image
(against.py: rebuild as it records; published.py: compare both ways)."""
