"""Where versions live: an OCI registry over HTTP or an OCI image-layout directory.

Both speak the same small interface (:class:`Store`); nothing here knows of builds
or of Concourse.
"""
