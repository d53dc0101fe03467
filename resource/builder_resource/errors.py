"""The few exception types the resource raises on purpose.

Each carries a message a pipeline author can act on; the CLI prints it as one
``error: ...`` line and exits 1. Anything else is a bug and gets a traceback only
with ``source.debug``.
"""


class ResourceError(Exception):
    """Base of every expected failure."""


class ConfigError(ResourceError):
    """The pipeline's source or params are wrong."""


class BuildError(ResourceError):
    """The build command failed, or its output could not be collected."""

    def __init__(self, message: str, exit_status: int = 1) -> None:
        super().__init__(message)
        self.exit_status = exit_status


class StoreError(ResourceError):
    """The store (registry or layout directory) refused or failed a request."""


class NotFoundError(StoreError):
    """A manifest, tag or blob does not exist in the store."""


class TagTakenError(StoreError):
    """Another put tagged the version first: versions are immutable."""

    def __init__(self, location: str, tag: str, holder: str) -> None:
        super().__init__(
            f"version {tag} was published to {location} by another put, as {holder}, "
            "while this one ran; versions are immutable, so this put publishes nothing"
        )
        self.holder = holder


class ImageError(ResourceError):
    """An image archive or layer is malformed, corrupt or hostile."""


class DigestMismatchError(ImageError):
    """Content did not hash to the digest it was fetched by."""
