# concourse-builder-img: the resource's own build.
#   make test   install what is missing, then run the test suite
#   make demo   install what is missing, then put, check and get examples/hello
#               through opt/resource/* against a local OCI layout store
SHELL := /bin/bash
PYTHON ?= python3
DEB_PACKAGES := buildah docker-registry skopeo umoci busybox-static git make ca-certificates
DEMO_DIR ?= $(CURDIR)/.demo

.PHONY: deps deb-deps py-deps test lint demo clean

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
	$(PYTHON) -m ruff check resource tests bench

test: deps
	$(PYTHON) -m ruff check resource tests bench
	$(PYTHON) -m pytest -q

demo: deps
	$(PYTHON) examples/demo.py --work $(DEMO_DIR)

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
	$(MAKE) -C examples/hello clean
