"""Tracking Connect: what it reports about posted documents, applied.

- ``statuses``: what one status means for a transmission and its document.
- ``feed``: the changes feed, read first, a page per transaction.
- ``polling``: documents the feed has not settled, asked about one by one; one
  tracking round (feed, then poll).
- ``parents``: a split parent follows its parts.
"""
