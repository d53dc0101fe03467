"""What the tests and the benchmark both run: real registries and the build
metadata Concourse gives a put. Both may import this package; neither imports
the other."""
