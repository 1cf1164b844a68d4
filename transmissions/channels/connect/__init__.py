"""The only code that speaks to Docman Connect.

``adapter`` holds every part of the contract that public documentation does not show
(``x-assumed`` in shared/connect-api.yaml); ``client`` does HTTP with timeouts, TLS
and token handling; ``errors`` says, for every failure, whether a retry is safe.
"""
