"""Supply-chain documents about a built image, attached beside it (never inside it).

contents.py reads what an image holds (files, the dpkg database, copyright files); spdx.py and
cyclonedx.py write SBOMs from it and the lock; provenance.py writes in-toto statements (SLSA
provenance, reproduction attestations); attach.py turns them into OCI artifacts whose subject is
the manifest (or index) they describe. Every document is a function of the build's inputs:
the same recipe, lock and epoch give the same bytes.
"""
