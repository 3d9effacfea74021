"""Proving a build reproducible: rebuild under variations (rebuild.py), or against a published image (against.py, published.py)."""
