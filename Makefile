# concourse-builder-img: the resource's own build.
#   make / make image   build the resource image (docker where a daemon answers,
#                       else img, else buildah with vfs and chroot isolation)
#   make image-archive  the same, saved as release/concourse-builder-img.tar
#   make image-test     build the Dockerfile's test stage (runs the unit tests)
#   make image-ci       what CI proves of the image, offline: build it through its own
#                       put (debootstrap base, stand-in downloads from 127.0.0.1), its
#                       test stage, then put/check/get inside it in Concourse-shaped
#                       runc containers (full, fuse-only, unprivileged)
#   make release        the resource builds its own image through its own put
#                       (opt/resource/out, command `make image-archive`) into the
#                       local store .release-store/: it eats its own cooking
#   make fly-execute    run ci/build.yml on Concourse: fly execute, privileged
#   make test   install what is missing, then run the test suite
#   make demo   install what is missing, then put, check and get examples/hello
#               through opt/resource/* against a local OCI layout store
#   make reliability  the fault, kill -9, race and fuzz suite at 10x its CI sample
SHELL := /bin/bash
PYTHON ?= python3
DEB_PACKAGES := buildah docker-registry skopeo umoci busybox-static git make ca-certificates
DEMO_DIR ?= $(CURDIR)/.demo

.DEFAULT_GOAL := image

# The image builder. Run by the resource's put, DOCKER is already set (img or
# buildah, with what they need exported); at a desk it is found here.
DOCKER ?= $(shell if docker info >/dev/null 2>&1; then echo docker; \
  elif command -v img >/dev/null; then echo img; \
  elif command -v buildah >/dev/null; then echo buildah; else echo none; fi)
IMAGE ?= localhost/concourse-builder-img
IMAGE_TAG ?= dev
ARCHIVE := $(CURDIR)/release/concourse-builder-img.tar
# The Dockerfile's build arguments, passed on where set (the offline build sets them:
# tests/resource_image/build_image.sh), and BUILD_CA, a PEM file handed to the build as the
# BuildKit secret `ca` (docker and buildah; img v0.5.11 has no --secret).
IMAGE_ARG_NAMES := DEBIAN_IMAGE GO_IMAGE IMG_URL IMG_SHA256 SPRUCE_FROM SPRUCE_URL SPRUCE_SHA256
BUILD_CA ?=
IMAGE_BUILD_ARGS = $(foreach a,$(IMAGE_ARG_NAMES),$(if $($(a)),--build-arg $(a)=$($(a))))
IMAGE_SECRET = $(if $(BUILD_CA),--secret id=ca$(comma)src=$(BUILD_CA))
comma := ,

RELEASE_STORE ?= $(CURDIR)/.release-store
RELEASE_COMMAND ?= make image-archive
RELEASE_BUILDER ?=
RELEASE_VERSION ?=

FLY ?= fly
FLY_TARGET ?= ci
TASK_IMAGE ?= example.org/concourse-builder-img
TASK_IMAGE_TAG ?= 1

.PHONY: deps deb-deps py-deps test lint demo clean
.PHONY: image image-archive image-test image-ci release fly-execute

deps: deb-deps py-deps

# Debian packages, only those missing (apt-get needs root, as on CI and in the image).
deb-deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

py-deps:
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[test]'

lint: py-deps
	$(PYTHON) -m ruff check resource tests bench harness

test: deps
	$(PYTHON) -m ruff check resource tests bench harness
	$(PYTHON) -m pytest -q

demo: deps
	$(PYTHON) examples/demo.py --work $(DEMO_DIR)

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
	$(MAKE) -C examples/hello clean

# $(call build_image,STAGE,REF): one Dockerfile stage, with whichever builder.
define build_image
case "$(DOCKER)" in \
  docker) DOCKER_BUILDKIT=1 docker build --target $(1) $(IMAGE_BUILD_ARGS) $(IMAGE_SECRET) -t $(2) . ;; \
  img) img build --target $(1) $(IMAGE_BUILD_ARGS) -t $(2) . ;; \
  buildah) STORAGE_DRIVER=$${STORAGE_DRIVER:-vfs} buildah build --layers \
      --isolation $${BUILDAH_ISOLATION:-chroot} --target $(1) $(IMAGE_BUILD_ARGS) $(IMAGE_SECRET) \
      -t $(2) . ;; \
  *) echo "no image builder: start a docker daemon, or install img or buildah" >&2; exit 1 ;; \
esac
endef

image:
	$(call build_image,resource,$(IMAGE):$(IMAGE_TAG))

image-test:
	$(call build_image,test,$(IMAGE)-test:$(IMAGE_TAG))

# One image, one save, an absolute path (as img v0.5.11 wants it).
image-archive:
	rm -rf release && mkdir -p release
	$(call build_image,resource,$(IMAGE):$(IMAGE_TAG))
	case "$(DOCKER)" in \
	  docker) docker save -o $(ARCHIVE) $(IMAGE):$(IMAGE_TAG) ;; \
	  img) img save -o $(ARCHIVE) $(IMAGE):$(IMAGE_TAG) ;; \
	  buildah) STORAGE_DRIVER=$${STORAGE_DRIVER:-vfs} buildah push --quiet \
	      $(IMAGE):$(IMAGE_TAG) docker-archive:$(ARCHIVE):$(IMAGE):$(IMAGE_TAG) ;; \
	esac

image-ci:
	$(MAKE) deb-deps DEB_PACKAGES="$(DEB_PACKAGES) debootstrap runc curl"
	bash tests/resource_image/build_image.sh
	BUILDER_IMAGE_REQUIRED=1 $(PYTHON) -m pytest -q -m image tests/resource_image

# The resource's own put, as Concourse would run it, on this checkout.
release: deps
	mkdir -p $(RELEASE_STORE) && echo '*' > $(RELEASE_STORE)/.gitignore
	$(PYTHON) -c 'import json, sys; a = sys.argv[1:]; \
	  s = {"repository": a[0], "command": a[1], **({"builder": a[2]} if a[2] else {})}; \
	  p = {"context": ".", **({"version": a[3]} if a[3] else {})}; \
	  print(json.dumps({"source": s, "params": p}))' \
	  '$(RELEASE_STORE)' '$(RELEASE_COMMAND)' '$(RELEASE_BUILDER)' '$(RELEASE_VERSION)' \
	  | opt/resource/out $(CURDIR)

fly-execute:
	$(FLY) -t $(FLY_TARGET) execute -c ci/build.yml -i src=. --privileged \
	  -o release=$(CURDIR)/release \
	  -v task_image=$(TASK_IMAGE) -v task_image_tag=$(TASK_IMAGE_TAG)

# The reliability suite at ten times the sample make test runs (see README
# "Reliability"): make reliability RELIABILITY_SEED=7 replays other schedules.
RELIABILITY_SCALE ?= 10
.PHONY: reliability
reliability: deps
	RELIABILITY_SCALE=$(RELIABILITY_SCALE) $(PYTHON) -m pytest -q tests/reliability

# Benchmarks against skopeo and umoci on this machine (issue 6; see README
# "Performance"): make bench BENCH_ARGS='--pairs 5 --size-mib 200 --only put,check'.
# bench-smoke: a tiny image and 1 pair, to see that every measure runs.
BENCH_ARGS ?=
.PHONY: bench bench-smoke
bench: deb-deps bench-deps
	$(PYTHON) -m bench.run $(BENCH_ARGS)

bench-smoke: deb-deps bench-deps
	$(PYTHON) -m bench.run --smoke $(BENCH_ARGS)

# GNU time measures peak RSS (%M); the resource runs on Debian's python3, as in the image.
.PHONY: bench-deps
bench-deps:
	@$(MAKE) --no-print-directory deb-deps DEB_PACKAGES="time python3 python3-venv"
