"""Shared primitives: canonical codec, Ed25519 keys, hashing, Merkle trees, chain types, errors."""
