"""Cosign-compatible signatures and attestations for images xarch pushes (docs/signing.md).

Written natively rather than by driving the `cosign` binary: the formats are small and stable
(sigstore's simple-signing payload, DSSE, cosign's `sha256-<hex>.sig`/`.att` tags and its
encrypted key file), the crypto comes from maintained libraries (`cryptography` for ECDSA/Ed25519/
RSA and PEM, PyNaCl for NaCl secretbox, hashlib for scrypt), and so a machine that signs or checks
needs no Go binary. The real cosign is the oracle in tests/integration/test_sign.py: it verifies what xarch
signs, and xarch verifies what it signs. Keyless (Fulcio/Rekor) signing is left to cosign itself.
"""
