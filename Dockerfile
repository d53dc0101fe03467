# syntax=docker/dockerfile:1.2
# (The syntax line: img v0.5.11's built-in Dockerfile frontend predates RUN --mount;
# docker and img fetch this one, buildah reads RUN --mount itself and ignores it.)
#
# The concourse-builder-img resource image: what `resource_types` points at.
#
#   docker build .        the resource image (the last stage); img and buildah alike
#   make image            the same, with whichever builder is here
#   make image-test       the `test` stage: the unit tests run during the build
#
# Stages: fetch (img, verified by its published sha256) and spruce (built from source,
# its modules verified by the Go checksum database) -> venv (the package and its
# pinned Python dependencies, in /opt/builder-resource, without pip) -> resource
# (Debian bookworm, the builders, runc, and what a Makefile-rooted build expects)
# -> test -> the resource again, last, so that a plain `docker build .` gives it.
#
# Behind a TLS-intercepting proxy, give the build your CA as a BuildKit secret:
#   docker build --secret id=ca,src=corp-ca.pem .
# apt, curl, pip and go trust it in every stage (image/with-build-ca); no layer keeps it.
#
# Offline (CI): DEBIAN_IMAGE names a local base (debootstrap), IMG_URL/IMG_SHA256 and
# SPRUCE_FROM=download with SPRUCE_URL/SPRUCE_SHA256 name files served from 127.0.0.1.
#
# amd64 only: img's checksum below is that of its linux-amd64 binary.

ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
ARG GO_IMAGE=docker.io/library/golang:1.23-bookworm
# source: build spruce with Go (the default); download: SPRUCE_URL, which SPRUCE_SHA256
# must then verify.
ARG SPRUCE_FROM=source
ARG SPRUCE_VERSION=v1.31.1

# ---------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS fetch

RUN --mount=type=secret,id=ca --mount=type=bind,source=image/with-build-ca,target=/run/with-build-ca \
    /run/with-build-ca sh -c 'apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && apt-get clean && rm -rf /var/lib/apt/lists/*'

# img v0.5.11 (2020-11-11), the last release of genuinetools/img. The sha256 is the one
# published with that release for img-linux-amd64.
ARG IMG_VERSION=v0.5.11
ARG IMG_URL=https://github.com/genuinetools/img/releases/download/${IMG_VERSION}/img-linux-amd64
ARG IMG_SHA256=cc9bf08794353ef57b400d32cd1065765253166b0a09fba360d927cfbd158088
RUN --mount=type=secret,id=ca --mount=type=bind,source=image/with-build-ca,target=/run/with-build-ca \
    set -eu; mkdir -p /out; \
    /run/with-build-ca curl -fsSL -o /out/img "${IMG_URL}"; \
    echo "${IMG_SHA256}  /out/img" | sha256sum -c -; \
    chmod 0755 /out/img

# ---------------------------------------------------------------------------
# spruce (geofffranks/spruce), the YAML merger Concourse pipelines are often built
# with. No checksum of its release binaries is published, so it is built from source:
# `go install` checks every module against the Go checksum database (sum.golang.org).
FROM ${GO_IMAGE} AS spruce-source
ARG SPRUCE_VERSION
RUN --mount=type=secret,id=ca --mount=type=bind,source=image/with-build-ca,target=/run/with-build-ca \
    set -eu; \
    CGO_ENABLED=0 /run/with-build-ca go install -trimpath \
      -ldflags "-s -w -X main.Version=${SPRUCE_VERSION#v}" \
      "github.com/geofffranks/spruce/cmd/spruce@${SPRUCE_VERSION}"; \
    mkdir -p /out && cp "$(go env GOPATH)/bin/spruce" /out/spruce \
 && rm -rf "$(go env GOPATH)/pkg" "$(go env GOCACHE)"

# A spruce binary from SPRUCE_URL, verified by SPRUCE_SHA256 (required here).
FROM fetch AS spruce-download
ARG SPRUCE_VERSION
ARG SPRUCE_URL=https://github.com/geofffranks/spruce/releases/download/${SPRUCE_VERSION}/spruce-linux-amd64
ARG SPRUCE_SHA256=
RUN --mount=type=secret,id=ca --mount=type=bind,source=image/with-build-ca,target=/run/with-build-ca \
    set -eu; \
    if [ -z "${SPRUCE_SHA256}" ]; then \
      echo "SPRUCE_FROM=download needs SPRUCE_SHA256: no unverified download" >&2; exit 1; \
    fi; \
    /run/with-build-ca curl -fsSL -o /out/spruce "${SPRUCE_URL}"; \
    echo "${SPRUCE_SHA256}  /out/spruce" | sha256sum -c -; \
    chmod 0755 /out/spruce

FROM spruce-${SPRUCE_FROM} AS spruce

# ---------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS venv

RUN --mount=type=secret,id=ca --mount=type=bind,source=image/with-build-ca,target=/run/with-build-ca \
    /run/with-build-ca sh -c 'apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      binutils ca-certificates python3 python3-venv \
 && apt-get clean && rm -rf /var/lib/apt/lists/*'

# A virtualenv of its own: the resource's Python dependencies stay out of the
# python3 that the pipeline's build command sees. pip and setuptools only install it,
# and leave; the wheels' C extensions lose their debug symbols (zstandard's two are
# 12 MB each with them). Every module is compiled here, once (about 8 MB): put and
# get run in a new container each time, and would otherwise compile what they import
# on every run. unchecked-hash: the image never changes, so no source is re-read.
COPY pyproject.toml /src/
COPY resource /src/resource
RUN --mount=type=secret,id=ca --mount=type=bind,source=image/with-build-ca,target=/run/with-build-ca \
    set -eu; \
    python3 -m venv /opt/builder-resource; \
    /run/with-build-ca /opt/builder-resource/bin/pip install --no-cache-dir \
      --disable-pip-version-check -c /src/resource/constraints.txt /src; \
    /opt/builder-resource/bin/pip uninstall -y -q pip setuptools; \
    find /opt/builder-resource -name '*.so' -exec strip --strip-unneeded {} +; \
    rm -f /opt/builder-resource/bin/activate* /opt/builder-resource/bin/Activate.ps1; \
    find /opt/builder-resource -name __pycache__ -prune -exec rm -rf {} +; \
    /opt/builder-resource/bin/python3 -m compileall -q -j 0 \
      --invalidation-mode unchecked-hash /opt/builder-resource/lib; \
    /opt/builder-resource/bin/python3 -c "import builder_resource.cli"

# ---------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS resource

# buildah: the maintained builder, vfs + chroot (works under fuse-only privileged mode
# too), with netavark for the network stack its library depends on (4 MB, where the
# default containernetworking-plugins are 45 MB; chroot isolation uses neither);
# runc: img's runtime (buildah recommends it, and --no-install-recommends drops it);
# uidmap: newuidmap/newgidmap for rootless img and buildah; util-linux: unshare, with
# which put checks its privileges; the rest: what a Makefile-rooted build expects.
RUN --mount=type=secret,id=ca --mount=type=bind,source=image/with-build-ca,target=/run/with-build-ca \
    /run/with-build-ca sh -c 'apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 buildah netavark runc uidmap util-linux make bash coreutils git jq \
      ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log'

COPY --from=fetch /out/img /usr/local/bin/img
COPY --from=spruce /out/spruce /usr/local/bin/spruce
COPY --from=venv /opt/builder-resource /opt/builder-resource
COPY opt/resource /opt/resource

# The wrappers in /opt/resource run this python; put may add CA certificates to
# this image's system store (it is the resource's own container).
ENV BUILDER_RESOURCE_PYTHON=/opt/builder-resource/bin/python3 \
    BUILDER_RESOURCE_INSTALL_CAS=1

RUN /opt/resource/check </dev/null 2>&1 | grep -q "stdin is empty" \
 && buildah --version && runc --version && spruce --version && jq --version \
 && test -x /usr/local/bin/img

# ---------------------------------------------------------------------------
FROM resource AS test

RUN --mount=type=secret,id=ca --mount=type=bind,source=image/with-build-ca,target=/run/with-build-ca \
    /run/with-build-ca sh -c 'apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3-venv docker-registry skopeo umoci busybox-static openssl \
 && apt-get clean && rm -rf /var/lib/apt/lists/*'

WORKDIR /src
COPY . /src
RUN --mount=type=secret,id=ca --mount=type=bind,source=image/with-build-ca,target=/run/with-build-ca \
    /opt/builder-resource/bin/python3 -m ensurepip --default-pip \
 && /run/with-build-ca /opt/builder-resource/bin/pip install --no-cache-dir \
      --disable-pip-version-check -c /src/resource/constraints.txt "/src[test]"
ENV PATH=/opt/builder-resource/bin:$PATH
# A build step has no privileges to create namespaces: the unit tests here; the whole
# suite (real registries, real buildah) when the image runs privileged.
RUN python3 -m ruff check resource tests harness && python3 -m pytest -q -p no:cacheprovider tests/unit
CMD ["python3", "-m", "pytest", "-q"]

# ---------------------------------------------------------------------------
FROM resource
