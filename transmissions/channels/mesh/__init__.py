"""The only code that speaks MESH.

``client`` wraps NHS England's ``mesh_client`` (auth tokens, TLS, chunking) and
returns typed results; ``errors`` says, for every failure, whether a retry is safe;
``itk3`` builds the ITK3 message we send and reads the acknowledgements that come
back; ``connections`` builds a client from a mailbox's secrets.
"""
