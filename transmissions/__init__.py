"""transmissions: everything that leaves docflow for a practice, and what comes back
(``engine``, ``channels``, ``pipeline``; ``pds`` for patient look-ups)."""
