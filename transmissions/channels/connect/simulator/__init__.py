"""A Docman Connect simulator: shared/connect-api.yaml served over real HTTP.

It runs as its own process (``manage.py connect_simulator``), keeps its state in its
own SQLite file so it survives restarts, and plays per-destination behaviours with a
time multiplier so a day of a document's life can pass in seconds.
"""
