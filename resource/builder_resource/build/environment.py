"""The environment the build command runs in."""

from __future__ import annotations

from collections.abc import Mapping

from .builders import Builder


def build_environment(
    base: Mapping[str, str], builder: Builder, user_env: Mapping[str, str]
) -> dict[str, str]:
    """The resource's own environment (which carries Concourse's build variables),
    then what the builder needs, then the pipeline's ``env``, which wins."""
    env = dict(base)
    env.update(builder.environment())
    env.update(user_env)
    return env
