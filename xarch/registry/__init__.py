"""OCI distribution: push an OCI layout, assemble an index from per-arch manifests, pull.

One concern per module: `reference` parses image references, `auth` finds credentials and
answers registry challenges, `client` speaks the HTTP API (uploads, mounts, retries),
`layout` reads an OCI layout directory, `mediatypes` converts to Docker schema2, `push`,
`assemble` and `pull` are the operations, `commands` the click commands.
"""
