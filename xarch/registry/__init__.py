"""OCI distribution: push an OCI layout, assemble an index from per-arch manifests, pull, compare.

One concern per module: `reference` parses image references, `auth` finds credentials and
answers registry challenges, `client` speaks the HTTP API (uploads, mounts, retries),
`uploads` remembers unfinished chunked uploads across runs, `layout_source` reads an OCI
layout (folder or oci-archive), `mediatypes` converts to Docker schema2, `push`, `assemble`,
`pull` and `against` (verify --against) are the operations, `commands` the click commands.
"""
