"""The policy pack, served and called as the Pulumi engine serves and calls it, fed the offline plan's resources.

Serving (pulumi sdk/python/cmd/pulumi-language-python/main.go ``RunPlugin`` for kind=analyzer): the pack runs in
its own interpreter as ``python -u -m pulumi.policy <engine address> <pack dir>`` with the pack directory as its
working directory; ``PolicyPack(...)`` starts a gRPC server on 127.0.0.1 and prints its port as the first line of
stdout. The engine then calls ``GetAnalyzerInfo``, ``Configure`` (every policy with the enforcement level the pack
declares: pulumi pkg/resource/analyzer/config.go ``createConfigWithDefaults``) and, once the steps are known,
``AnalyzeStack`` with every resource of the stack.

Encoding (pulumi pkg/resource/deploy/step_generator.go ``AnalyzeResources`` and pkg/resource/plugin/
analyzer_plugin.go ``AnalyzeStack``): a resource's *outputs* as a protobuf Struct (numbers are doubles), secrets kept
as secret objects, unknowns as the engine's sentinel strings, internal ``__`` keys skipped; options
(``additionalSecretOutputs``, ``ignoreChanges``, ``protect``, ``parent``), ``dependencies`` and
``propertyDependencies`` (URNs per input property). Two forms of one plan:

- ``PREVIEW``: a preview of a fresh stack. Nothing exists yet, so every id and every provider-computed output is
  unknown, and so is every input computed from one (found through the input's property dependencies: a value equal
  to, or containing, an id or computed output of a resource it depends on);
- ``UP``: after ``pulumi up``: inputs plus the provider's computed outputs and ``id``, all known.

The engine also lists the stack resource and the default provider; both are added here. Never imports
``policy/__main__.py`` (constructing a ``PolicyPack`` starts a server and blocks): the pack only ever runs in the
child process.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from labctl.offline import PROJECT, SECRET_SIG, SIG_KEY, PlannedResource

POLICY_DIR = Path(__file__).resolve().parent.parent / "policy"
PREVIEW = "preview"
UP = "up"
FORMS = (PREVIEW, UP)
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # pulumi sdk/go/common/resource/plugin/rpc.go UnknownStringValue
OCI_PROVIDER_VERSION = "5.5.0"
START_TIMEOUT_S = 60.0
# Provider outputs that are not derived from an id (a lifecycle state, the region): never treated as "computed from
# a dependency" when matching values, so a literal "ACTIVE" elsewhere is not mistaken for one.
_NOT_DERIVED = frozenset({"state", "region", "timeCreated"})
_LEVELS = {analyzer_pb2.ADVISORY: "advisory", analyzer_pb2.MANDATORY: "mandatory", analyzer_pb2.DISABLED: "disabled"}


class PackStartError(Exception):
    """The pack did not print its port (its stderr is in the message; it never holds stack secrets)."""


@dataclass(frozen=True)
class Diagnostic:
    """One diagnostic the pack returned: a violation, or pulumi-policy's "can't run ... during preview" advisory."""

    policy: str
    level: str  # mandatory | advisory
    urn: str
    message: str

    @property
    def cannot_run(self) -> bool:
        return "during preview" in self.message and self.message.startswith("can't run policy")


# --- encoding ------------------------------------------------------------------------------------------------------


def _secret(value: Any) -> dict[str, Any]:
    return {SIG_KEY: SECRET_SIG, "value": value}


def _mark_secrets(value: Any, paths: set[str], path: str = "") -> Any:
    if path and path in paths:
        return _secret(value)
    if isinstance(value, dict):
        return {k: _mark_secrets(v, paths, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_secrets(v, paths, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _computed_keys(r: PlannedResource) -> list[str]:
    """What the provider computes: outputs that are not inputs (the mocks echo inputs into outputs)."""
    return [k for k in r.outputs if k not in r.props and not k.startswith("__")]


def _derived_values(r: PlannedResource) -> set[str]:
    """String values of ``r`` that only exist once it is created: its id and its computed outputs."""
    found = {r.id} if r.id else set()
    for k in _computed_keys(r):
        v = r.outputs[k]
        if k not in _NOT_DERIVED and isinstance(v, str) and len(v) >= 6:
            found.add(v)
    return found


def _unknown_where_derived(value: Any, derived: set[str]) -> Any:
    if isinstance(value, str):
        return UNKNOWN if any(d == value or (len(d) >= 8 and d in value) for d in derived) else value
    if isinstance(value, dict):
        return {k: _unknown_where_derived(v, derived) for k, v in value.items()}
    if isinstance(value, list):
        return [_unknown_where_derived(v, derived) for v in value]
    return value


def properties(r: PlannedResource, by_urn: Mapping[str, PlannedResource], form: str) -> dict[str, Any]:
    """The property map the engine would send for ``r`` in ``form`` (before protobuf encoding)."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    props = {k: v for k, v in r.props.items() if not k.startswith("__")}  # SkipInternalKeys
    if form == PREVIEW:
        out = {}
        for k, v in props.items():
            derived: set[str] = set()
            for dep in r.property_dependencies.get(k, []):
                if dep in by_urn:
                    derived |= _derived_values(by_urn[dep])
            out[k] = _unknown_where_derived(v, derived) if derived else v
        if r.custom:
            out.update({k: UNKNOWN for k in _computed_keys(r)})
            out["id"] = UNKNOWN
        props = out
    elif r.custom:
        props = {**{k: r.outputs[k] for k in _computed_keys(r)}, **props}
        if r.id:
            props["id"] = r.id
    secret = {p for p in r.secret_paths if not p.startswith("__")} | set(r.additional_secret_outputs)
    return _mark_secrets(props, {p for p in secret if p.split(".")[0].split("[")[0] in props})


def _struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(dict(props))  # every number becomes a double, as on the wire
    return s


def _stack_outputs(outputs: Mapping[str, Any], secret: set[str], form: str) -> dict[str, Any]:
    """The stack resource's outputs: unknown in a fresh preview (computed from resources), secrets marked."""
    return (
        {k: _secret(v) if k in secret else v for k, v in outputs.items()}
        if form == UP
        else dict.fromkeys(outputs, UNKNOWN)
    )


def stack_urn(stack: str, project: str = PROJECT) -> str:
    return f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"


def encode(
    resources: Sequence[PlannedResource],
    form: str,
    stack: str = "dev",
    project: str = PROJECT,
    stack_outputs: Mapping[str, Any] | None = None,
    secret_outputs: Iterable[str] = (),
) -> list[analyzer_pb2.AnalyzerResource]:
    """The ``AnalyzeStackRequest.resources`` the engine would send for the plan's resources in ``form``."""
    by_urn = {r.urn: r for r in resources}
    root = stack_urn(stack, project)
    provider_urn = (
        f"urn:pulumi:{stack}::{project}::pulumi:providers:oci::default_{OCI_PROVIDER_VERSION.replace('.', '_')}"
    )
    provider_props = {"version": OCI_PROVIDER_VERSION}
    provider = analyzer_pb2.AnalyzerProviderResource(
        type="pulumi:providers:oci",
        properties=_struct(provider_props),
        urn=provider_urn,
        name=provider_urn.rsplit("::", 1)[-1],
    )
    out = [
        analyzer_pb2.AnalyzerResource(
            type="pulumi:pulumi:Stack",
            properties=_struct(_stack_outputs(stack_outputs or {}, set(secret_outputs), form)),
            urn=root,
            name=f"{project}-{stack}",
            options=analyzer_pb2.AnalyzerResourceOptions(),
        ),
        analyzer_pb2.AnalyzerResource(
            type="pulumi:providers:oci",
            properties=_struct(provider_props),
            urn=provider_urn,
            name=provider.name,
            options=analyzer_pb2.AnalyzerResourceOptions(),
        ),
    ]
    for r in resources:
        parent = r.parent or root
        out.append(
            analyzer_pb2.AnalyzerResource(
                type=r.resource_type,
                properties=_struct(properties(r, by_urn, form)),
                urn=r.urn,
                name=r.name,
                options=analyzer_pb2.AnalyzerResourceOptions(
                    protect=r.protect,
                    ignoreChanges=list(r.ignore_changes),
                    additionalSecretOutputs=list(r.additional_secret_outputs),
                    customTimeouts=analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts(),
                    parent=parent,
                ),
                provider=provider if r.custom and r.resource_type.startswith("oci:") else None,
                parent=parent,
                dependencies=list(dict.fromkeys(r.dependencies)),
                propertyDependencies={
                    k: analyzer_pb2.AnalyzerPropertyDependencies(urns=list(v))
                    for k, v in r.property_dependencies.items()
                    if v  # the engine skips properties without dependencies
                },
            )
        )
    return out


# --- serving -------------------------------------------------------------------------------------------------------


class PolicyPackHost:
    """The pack in a child interpreter, as the engine runs it; a context manager that always stops the child."""

    def __init__(
        self,
        policy_dir: Path | str = POLICY_DIR,
        python: str = sys.executable,
        stack: str = "dev",
        project: str = PROJECT,
        dry_run: bool = True,
    ) -> None:
        self.policy_dir = Path(policy_dir).resolve()
        self.python = python
        self.env = {
            **os.environ,
            "PULUMI_PROJECT": project,
            "PULUMI_STACK": stack,
            "PULUMI_DRY_RUN": "true" if dry_run else "false",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None
        self.stub: analyzer_pb2_grpc.AnalyzerStub | None = None
        self.port = 0

    def start(self) -> PolicyPackHost:
        # The engine address argument is parsed and unused by the Python policy runtime (pulumi/policy/__main__.py).
        cmd = [self.python, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(self.policy_dir)]
        self.proc = subprocess.Popen(
            cmd, cwd=self.policy_dir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT_S)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line.isdigit():
            if self.proc.poll() is None:
                self.proc.terminate()
            _, err_bytes = self.proc.communicate(timeout=10)
            err = err_bytes.decode(errors="replace")
            self.close()
            raise PackStartError(
                f"policy pack in {self.policy_dir} did not print its port (got {line!r}); stderr:\n{err[-2000:]}"
            )
        self.port = int(line)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT_S)
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)
        return self

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr) if self.proc is not None else ():
            if stream is not None:
                stream.close()

    def __enter__(self) -> PolicyPackHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stub(self) -> analyzer_pb2_grpc.AnalyzerStub:
        if self.stub is None:
            raise RuntimeError("PolicyPackHost.start() first")
        return self.stub

    def plugin_version(self) -> str:
        return self._stub().GetPluginInfo(empty_pb2.Empty()).version

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        return self._stub().GetAnalyzerInfo(empty_pb2.Empty())

    def configure(self, levels: Mapping[str, int] | None = None) -> None:
        """Configure every policy the way the engine does without a config file: its declared enforcement level."""
        config = {}
        for p in self.info().policies:
            level = (levels or {}).get(p.name, p.enforcementLevel)
            config[p.name] = analyzer_pb2.PolicyConfig(enforcementLevel=level, properties=struct_pb2.Struct())
        self._stub().Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=config))

    def analyze_stack(self, resources: Iterable[analyzer_pb2.AnalyzerResource]) -> list[Diagnostic]:
        response = self._stub().AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=list(resources)))
        return [
            Diagnostic(
                policy=d.policyName,
                level=_LEVELS.get(d.enforcementLevel, str(d.enforcementLevel)),
                urn=d.urn,
                message=d.message,
            )
            for d in response.diagnostics
        ]


def as_json(resources: Iterable[analyzer_pb2.AnalyzerResource]) -> list[dict[str, Any]]:
    """The request's resources as JSON (what the engine's gRPC log would show); for debugging and tests."""
    return [json_format.MessageToDict(r) for r in resources]


__all__ = [
    "FORMS",
    "PREVIEW",
    "UP",
    "Diagnostic",
    "PackStartError",
    "PolicyPackHost",
    "as_json",
    "encode",
    "properties",
]
