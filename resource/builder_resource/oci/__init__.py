"""The OCI content model: digests, descriptors, manifests, image archives, layers.

Nothing here knows about Concourse, builds or where content is stored.
"""
