"""The pipeline of one build: recipe and lock in, one OCI image index out (docs/design.md, "Code map")."""
