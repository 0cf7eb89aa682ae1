"""Shared fixtures: a valid lab config, and the real program run offline under the OCI mocks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import copy  # noqa: E402
from collections.abc import Callable  # noqa: E402

from labctl.offline import Plan, PlannedResource, run_program  # noqa: E402

COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaa7kq2m4n6p8r2s4t6v8x2z4b6d8f2h4j6l8n2p4r6t8v2x4z6b8d2"


def make_ssh_public_key(comment: str = "student@lab") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{raw} {comment}"


SSH_PUB = make_ssh_public_key()


def good_raw(**overrides: str | None) -> dict[str, str]:
    """Short-key config a student would set: the three required values (and a student id)."""
    raw: dict[str, Any] = {
        "compartmentId": COMPARTMENT,
        "sshPublicKey": SSH_PUB,
        "adminCidr": "198.51.100.23/32",
        "studentId": "a23-042",
    }
    for k, v in overrides.items():
        if v is None:
            raw.pop(k, None)
        else:
            raw[k] = v
    return raw


def full_keys(raw: dict[str, str]) -> dict[str, str]:
    return {f"oci-dblab:{k}": v for k, v in raw.items()}


def plan_of(secret: tuple[str, ...] = (), stack: str = "dev", **overrides: str | None) -> Plan:
    return run_program(full_keys(good_raw(**overrides)), secret_keys=[f"oci-dblab:{k}" for k in secret], stack=stack)


def named(plan: Plan | list[PlannedResource], name: str) -> PlannedResource:
    """The one custom resource called ``name`` in a plan (or a list of its resources)."""
    resources = plan.resources if isinstance(plan, Plan) else plan
    [r] = [r for r in resources if r.name == name and r.custom]
    return r


def mutated(plan: Plan, change: Callable[[list[PlannedResource]], Any]) -> list[PlannedResource]:
    """A deep copy of the plan's resources with ``change`` applied: a mutated program, without editing code."""
    resources = copy.deepcopy(plan.resources)
    change(resources)
    return resources


@pytest.fixture(scope="session")
def plan() -> Plan:
    return plan_of()


INSTRUCTOR_PUB = make_ssh_public_key("instructor@course")


def instructor_yaml(key_path: str = "~/.ssh/course_ed25519", cidr: str = "198.51.100.40/32") -> str:
    """class.yaml lines giving the instructor's key and address (needed while the connection check is on)."""
    return (
        f"instructorSshPublicKey: {INSTRUCTOR_PUB}\ninstructorSshPrivateKeyPath: {key_path}\ninstructorCidr: {cidr}\n"
    )


# --- real servers stay on Linux ----------------------------------------------------------------------------
# Tests that start real servers (MariaDB/PostgreSQL/OpenSSH from tests/servers.py on loopback) need Linux as root.
# They run in `make test` (.ci/run, pr-offline.yml); the macOS/Windows matrix (.github/workflows/laptop-matrix.yml)
# deselects them with -m "not real_servers". A test gets the marker when it, or a fixture it uses that is defined in
# its own module, names a server class of tests.servers (one with a start()) or a starter flagged
# `starts_real_servers` (loopback_lab); mark anything else by hand with
# @pytest.mark.real_servers (test_local_lab.py does, for its network namespaces).


def _server_names(module: object) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if (isinstance(value, type) and value.__module__ == "tests.servers" and callable(getattr(value, "start", None)))
        or getattr(value, "starts_real_servers", False)
    }


def uses_real_servers(item: pytest.Item) -> bool:
    module = getattr(item, "module", None)
    names = _server_names(module) if module is not None else set()
    if not names:
        return False
    info = getattr(item, "_fixtureinfo", None)
    funcs = [getattr(item, "function", None)]
    if info is not None:
        funcs += [d.func for group in info.name2fixturedefs.values() for d in group]
    return any(names & set(getattr(getattr(f, "__code__", None), "co_names", ())) for f in funcs if f is not None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if uses_real_servers(item):
            item.add_marker(pytest.mark.real_servers)
