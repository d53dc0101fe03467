"""Fixtures shared by every test directory live in tests/fixtures/."""

pytest_plugins = [
    "fixtures.tools",
    "fixtures.registry",
    "fixtures.concourse",
]
