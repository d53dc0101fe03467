# The concourse-builder-img resource image: what `resource_types` points at.
#
#   make image            builds the `resource` stage (docker, else img, else buildah)
#   make image-test       builds the `test` stage: the unit tests run during the build;
#                         `docker run --privileged <test image>` runs the whole suite
#
# Stages: fetch (pinned binaries, verified by sha256) -> venv (the package and its
# Python dependencies, in /opt/builder-resource) -> resource (Debian bookworm, the
# builders and the tools a Makefile-rooted build expects) -> test -> the resource
# again, last, so that a plain `docker build .` gives the resource image.
#
# amd64 only: the img and spruce checksums below are for their linux-amd64 binaries.

ARG DEBIAN_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS fetch

# img v0.5.11 (2020-11-11), the last release of genuinetools/img. The sha256 is the
# one published for img-linux-amd64 with that release (and used, identically, by
# many Dockerfiles that install it).
ARG IMG_VERSION=v0.5.11
ARG IMG_SHA256=cc9bf08794353ef57b400d32cd1065765253166b0a09fba360d927cfbd158088

# spruce (geofffranks/spruce), the YAML merging tool Concourse pipelines are often
# built with. !!! SPRUCE_SHA256 MUST BE FILLED IN: the sha256 of
# https://github.com/geofffranks/spruce/releases/download/${SPRUCE_VERSION}/spruce-linux-amd64
# could not be verified where this Dockerfile was written. Take it from a trusted
# download and pass it (`make image SPRUCE_SHA256=...`, or --build-arg); the build
# stops here until then rather than install an unverified binary.
ARG SPRUCE_VERSION=v1.31.1
ARG SPRUCE_SHA256=

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN set -eu; mkdir -p /out; \
    curl -fsSL -o /out/img \
      "https://github.com/genuinetools/img/releases/download/${IMG_VERSION}/img-linux-amd64"; \
    echo "${IMG_SHA256}  /out/img" | sha256sum -c -; \
    chmod 0755 /out/img

RUN set -eu; \
    if [ -z "${SPRUCE_SHA256}" ]; then \
      echo "SPRUCE_SHA256 is not set: give the sha256 of spruce-linux-amd64 ${SPRUCE_VERSION} (make image SPRUCE_SHA256=...)" >&2; \
      exit 1; \
    fi; \
    curl -fsSL -o /out/spruce \
      "https://github.com/geofffranks/spruce/releases/download/${SPRUCE_VERSION}/spruce-linux-amd64"; \
    echo "${SPRUCE_SHA256}  /out/spruce" | sha256sum -c -; \
    chmod 0755 /out/spruce

# ---------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS venv

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

# A virtualenv of its own: the resource's Python dependencies stay out of the
# python3 that the pipeline's build command sees.
COPY pyproject.toml /src/
COPY resource /src/resource
RUN python3 -m venv /opt/builder-resource \
 && /opt/builder-resource/bin/pip install --no-cache-dir --disable-pip-version-check \
      -c /src/resource/constraints.txt /src \
 && /opt/builder-resource/bin/python3 -c "import builder_resource.cli"

# ---------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS resource

# buildah: the maintained builder, vfs + chroot (works under fuse-only privileged
# mode too); uidmap: newuidmap/newgidmap for rootless img and buildah;
# util-linux: unshare, with which put checks its privileges; the rest: what a
# Makefile-rooted build expects.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 buildah uidmap util-linux make bash coreutils git jq ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY --from=fetch /out/img /out/spruce /usr/local/bin/
COPY --from=venv /opt/builder-resource /opt/builder-resource
COPY opt/resource /opt/resource

# The wrappers in /opt/resource run this python; put may add CA certificates to
# this image's system store (it is the resource's own container).
ENV BUILDER_RESOURCE_PYTHON=/opt/builder-resource/bin/python3 \
    BUILDER_RESOURCE_INSTALL_CAS=1

RUN /opt/resource/check </dev/null 2>&1 | grep -q "stdin is empty" \
 && buildah --version && spruce --version && jq --version && test -x /usr/local/bin/img

# ---------------------------------------------------------------------------
FROM resource AS test

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      docker-registry skopeo umoci busybox-static openssl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . /src
RUN /opt/builder-resource/bin/pip install --no-cache-dir --disable-pip-version-check \
      -c /src/resource/constraints.txt "/src[test]"
ENV PATH=/opt/builder-resource/bin:$PATH
# A `docker build` step has no privileges to create namespaces: the unit tests here;
# the whole suite (real registries, real buildah) when the image runs privileged.
RUN python3 -m ruff check resource tests && python3 -m pytest -q tests/unit
CMD ["python3", "-m", "pytest", "-q"]

# ---------------------------------------------------------------------------
FROM resource
