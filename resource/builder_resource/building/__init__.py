"""Running a project's build and collecting what it produced.

Knows about builders (img, buildah) and the build's environment; knows nothing
of stores or of the Concourse protocol.
"""
