"""Payload bytes at rest and in use: the encrypted blob store, key rotation's
envelope encryption, the one access-logged way a person sees content, and the
investigation of a failed payload."""
