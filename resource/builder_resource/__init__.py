"""concourse-builder-img: a Concourse resource that builds with img or buildah and
publishes everything the build produced as one immutable OCI version."""

__version__ = "0.1.0"
