"""Media types of the OCI image spec and Docker's schema 2 (see the image-spec's
media-types.md and distribution's manifest-v2-2.md)."""

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"

INDEXES = (OCI_INDEX, DOCKER_LIST)
IMAGE_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
ALL_MANIFESTS = (*INDEXES, *IMAGE_MANIFESTS)

# The Accept list for every manifest GET: without all four, distribution 2.8 may
# down-convert a schema 2 manifest to schema 1 and change its digest.
MANIFEST_ACCEPT = ", ".join(ALL_MANIFESTS)

# The empty descriptor of image-spec manifest.md, content "{}".
EMPTY_JSON = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def layer_type(manifest_type: str, compression: str) -> str:
    """The layer media type matching a manifest flavour and a compression."""
    if manifest_type == DOCKER_MANIFEST:
        return {"gzip": DOCKER_LAYER_GZIP, "zstd": DOCKER_LAYER_ZSTD, "none": DOCKER_LAYER}[
            compression
        ]
    return {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER}[compression]
