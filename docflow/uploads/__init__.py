"""Vetting what arrives: the type a file really is, and the unsafe content (macros,
scripts, bombs, external resources) refused before anything is stored."""
