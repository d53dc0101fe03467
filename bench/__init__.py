"""Benchmarks of the resource against skopeo and umoci on the same machine.

``python3 -m bench.run`` (``make bench``) generates a test image, starts fresh
registries and runs ``opt/resource/*`` and its peer in alternating pairs; see
:mod:`bench.run` for the options.
"""
