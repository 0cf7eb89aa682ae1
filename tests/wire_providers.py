"""Tiny dynamic providers for tests/test_provider_host.py: importable, so the SDK pickles them by reference and
the provider host (started with the repository root as cwd) imports this module, exactly as it imports
``components.envfile``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pulumi.dynamic import CheckResult, CreateResult, ResourceProvider, UpdateResult
from pulumi.output import Unknown

ECHO_SECRET = "Echo-S3cret 'q' \\ $z"


def _describe(value: Any) -> Any:
    """The Python type the provider was handed, with its value (never the secret's value)."""
    if isinstance(value, Unknown):
        return "Unknown"
    if isinstance(value, dict):
        return {k: _describe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_describe(v) for v in value]
    if value == ECHO_SECRET:
        return "str:[the secret]"
    return f"{type(value).__name__}:{value}"


class EchoProvider(ResourceProvider):
    """check() reports what it received; create() touches ``marker`` so a test can tell whether it ran."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult({**news, "seen": _describe({k: v for k, v in news.items() if k != "__provider"})}, [])

    def create(self, props: dict[str, Any]) -> CreateResult:
        Path(props["marker"]).write_text("created")
        return CreateResult("echo-1", {**props, "created": True})

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        Path(news["marker"]).write_text("updated")
        return UpdateResult(news)


class LeakyProvider(ResourceProvider):
    """A careless provider whose error repeats a secret input: the harness must cut it out."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        raise RuntimeError(f"cannot log in with password={props['password']!r} (other={props['other']})")
