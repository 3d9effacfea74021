"""A registry as a source of the read model (xarch.oci.model.BlobSource): manifests from
/v2/<name>/manifests/<digest>, blobs from /v2/<name>/blobs/<digest> (distribution spec "Pulling
manifests", "Pulling blobs"), each checked against its descriptor as it is read.

It lives here, not in xarch.oci, so that xarch.oci never imports the HTTP stack.
"""

from __future__ import annotations

from xarch.oci.verified import VerifiedStream
from xarch.registry.client import RegistryClient
from xarch.registry.errors import CorruptAnswer
from xarch.registry.reference import Reference


class RegistrySource:
    """The repository of REF on the registry CLIENT talks to; KNOWN holds manifests already fetched
    ({digest: exact bytes}, e.g. the one a tag named), so that they are not asked for twice."""

    def __init__(self, client: RegistryClient, ref: Reference, known: dict[str, bytes] | None = None) -> None:
        self.client, self.ref, self.known = client, ref, dict(known or {})

    @property
    def label(self) -> str:
        """The reference, as every message names it."""
        return str(self.ref)

    def open_blob(self, digest: str, size: int | None = None) -> VerifiedStream:
        """A stream of blob DIGEST, verified as it is read; CorruptAnswer/RegistryError (exit 4)."""
        return self.client.open_blob(self.ref.repository, digest, size)

    def read_manifest(self, digest: str, size: int | None = None) -> bytes:
        """The exact bytes of manifest DIGEST (checked to hash to it by the client, and to be SIZE bytes);
        CorruptAnswer (exit 4) when they are not."""
        data = self.known.get(digest)
        if data is None:
            data, _, _ = self.client.get_manifest(self.ref.repository, digest)
            self.known[digest] = data
        if size is not None and len(data) != size:
            raise CorruptAnswer(
                f"{self.ref}: manifest {digest} is {len(data)} bytes, its descriptor says {size}"
            )
        return data
