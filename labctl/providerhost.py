"""Serve a Pulumi dynamic provider exactly as the Pulumi engine does, without the Pulumi CLI.

The engine runs every Python dynamic resource through the SDK's own provider host: the plugin
``pulumi-resource-pulumi-python`` (pulumi/pulumi ``sdk/python/dist/pulumi-resource-pulumi-python``) is a shell
script that starts ``python -u -m pulumi.dynamic`` in the program directory; the host prints the port it listens
on (``pulumi/dynamic/__main__.py`` ``main``) and the engine then speaks the ResourceProvider gRPC protocol to it.
:class:`ProviderHost` does the same: a fresh interpreter, the program directory as cwd, that module, and the same
requests the engine sends (pulumi/pulumi ``pkg/resource/plugin/provider_plugin.go``):

* **Handshake, then Configure.** The host does not implement Handshake (UNIMPLEMENTED), so capabilities come
  from Configure, which it answers with ``acceptSecrets: false`` and no ``supportsPreview``.
* **Secrets.** Because of ``acceptSecrets: false`` the engine marshals every secret as its plain value
  (``rpc.go`` MarshalPropertyValue, ``KeepSecrets: protocol.acceptSecrets``) and afterwards re-marks result
  properties whose input of the same name was secret (``annotateSecrets``). Mark values with :func:`secret`;
  they are encoded the same way, and come back wrapped in :class:`Secret`.
* **Unknowns.** In a preview (``AllowUnknowns``) an unknown value travels as a sentinel string
  (``rpc.go`` ``UnknownStringValue``); the host turns it into ``pulumi.output.Unknown`` objects before calling
  ``check()``/``diff()`` (``deserialize_properties(..., keep_unknowns=True)``). Put :data:`UNKNOWN` anywhere.
* **Numbers** travel as doubles (protobuf ``Struct``): ``3306`` arrives as ``3306.0``.
* **Preview of Create/Update.** A provider without ``supportsPreview`` is not called at all: the engine hands
  back the inputs as the outputs (``provider_plugin.go`` Create/Update, ``if req.Preview``). So does this class.
* **The provider itself** is the ``__provider`` property: ``pulumi.dynamic.dynamic.serialize_provider`` run under
  the SDK's ``_serialize`` (as ``pulumi.dynamic.Resource.__init__`` does), a secret by default. dill pickles a
  provider whose class lives in an importable module *by reference*, so the host imports that module from cwd.
* **State.** Diff/Update/Delete/Read get the saved *outputs* (``olds``/``properties``) and the saved inputs
  (``old_inputs``/``inputs``); :meth:`ProviderHost.up`, :meth:`refresh` and :meth:`destroy` keep a
  :class:`ResourceState` the way the engine's step generator does.

Errors the host returns (a gRPC status whose details are the provider's traceback) become
:class:`ProviderError`; every secret value this host has seen is cut out of its text. The host process runs in
its own session and is killed (SIGTERM, then SIGKILL) when the context exits, whatever happened.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pulumi.dynamic
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.output import Unknown as _PulumiUnknown
from pulumi.runtime._serialization import _serialize
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from components.envfile import UNKNOWN as UNKNOWN_STRING_VALUE
from components.envfile import UNKNOWN_SENTINELS

PROVIDER_KEY = "__provider"  # pulumi/dynamic/dynamic.py PROVIDER_KEY

# UNKNOWN_SENTINELS: the engine's unknown sentinels, one per type (components/envfile.py cites their source). A
# Python program's unknowns all reach the engine as the string one (UNKNOWN_STRING_VALUE); this host sends that.

# pulumi/runtime/rpc.py _special_sig_key / _special_secret_sig (and rpc.go SigKey / SecretSig)
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_PROVIDER_PACKAGE_TYPE = "pulumi:providers:pulumi-python"
_REDACTED = "[secret]"


class _Unknown:
    """A value the engine does not know yet (a preview). Use the singleton :data:`UNKNOWN`."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


@dataclass(frozen=True)
class Secret:
    """A value the engine holds as secret. Its repr never shows the value."""

    value: Any

    def __repr__(self) -> str:
        return f"Secret({_REDACTED})"


def secret(value: Any) -> Secret:
    """Mark ``value`` secret, as the engine does for a ``pulumi.Output.secret`` input before it knows whether the
    provider accepts secrets (it then sends the plain value when the provider answered ``acceptSecrets: false``)."""
    return value if isinstance(value, Secret) else Secret(value)


def is_unknown(value: Any) -> bool:
    """True for :data:`UNKNOWN`, ``pulumi.output.Unknown`` objects and the engine's unknown sentinels."""
    return (
        value is UNKNOWN or isinstance(value, _PulumiUnknown) or (isinstance(value, str) and value in UNKNOWN_SENTINELS)
    )


def contains_unknowns(value: Any) -> bool:
    if isinstance(value, Secret):
        return contains_unknowns(value.value)
    if isinstance(value, Mapping):
        return any(contains_unknowns(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_unknowns(v) for v in value)
    return is_unknown(value)


def reveal(value: Any) -> Any:
    """``value`` with every :class:`Secret` unwrapped (for assertions and for writing files, never for logs)."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if isinstance(value, Mapping):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [reveal(v) for v in value]
    return value


def redacted(value: Any) -> Any:
    """``value`` with every :class:`Secret` replaced by ``"[secret]"`` and unknowns by ``"[unknown]"``."""
    if isinstance(value, Secret):
        return _REDACTED
    if is_unknown(value):
        return "[unknown]"
    if isinstance(value, Mapping):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(v) for v in value]
    return value


# --- outcomes and errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckOutcome:
    inputs: dict[str, Any]  # the checked inputs, decoded (secrets re-marked, unknowns as UNKNOWN)
    failures: list[tuple[str, str]]  # (property, reason)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class DiffOutcome:
    changes: bool | None  # None: the provider did not say (DIFF_UNKNOWN)
    replaces: list[str]
    stables: list[str]
    delete_before_replace: bool
    diffs: list[str]


@dataclass
class ResourceState:
    """What the engine keeps of one resource between runs: its id, checked inputs and outputs."""

    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


class ProviderHostError(Exception):
    """The provider host could not be started or answered outside the protocol. Never holds a secret."""


class ProviderError(ProviderHostError):
    """An RPC failed in the host (gRPC status). ``message`` is the provider's own error, secrets cut out."""

    def __init__(self, method: str, code: str, message: str, details: str) -> None:
        self.method = method
        self.code = code
        self.message = message
        self.details = details  # the host's full text (usually a traceback), secrets cut out
        super().__init__(f"{method} failed in the dynamic provider host ({code}): {message}")


class InvalidInputs(ProviderHostError):
    """Check returned failures: the engine stops here ("resource is invalid"), preview or not."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        lines = "; ".join(f"{prop}: {reason}" for prop, reason in failures)
        super().__init__(f"the provider's check refused the inputs: {lines}")


def _error_message(details: str) -> str:
    """The exception line(s) at the end of a Python traceback, or the whole text if it is not one."""
    lines = [ln for ln in details.strip().splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("Traceback"):
        return details.strip()
    last_frame = max((i for i, ln in enumerate(lines) if ln.startswith(" ")), default=-1)
    tail = lines[last_frame + 1 :]
    return "\n".join(tail) if tail else lines[-1]


# --- the wire format ------------------------------------------------------------------------------------------


class _Wire:
    """Encode/decode property maps as the engine's plugin.MarshalProperties/UnmarshalProperties do."""

    def __init__(self) -> None:
        self.accept_secrets = False
        self.secrets: set[str] = set()

    def remember(self, value: Any) -> None:
        if isinstance(value, Secret):
            self._remember_plain(value.value)
        elif isinstance(value, Mapping):
            for v in value.values():
                self.remember(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self.remember(v)

    def _remember_plain(self, value: Any) -> None:
        if isinstance(value, str):
            if value and not is_unknown(value):
                self.secrets.add(value)
        elif isinstance(value, Secret):
            self._remember_plain(value.value)
        elif isinstance(value, Mapping):
            for v in value.values():
                self._remember_plain(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self._remember_plain(v)
        # secret numbers and booleans are not cut out of messages: that would cut every port and count too

    def scrub(self, text: str) -> str:
        forms: set[str] = set()
        for s in self.secrets:
            forms.update({s, repr(s)[1:-1], json.dumps(s)[1:-1]})
        for form in sorted((f for f in forms if f), key=len, reverse=True):
            text = text.replace(form, _REDACTED)
        return text

    def encode(self, props: Mapping[str, Any], *, keep_unknowns: bool) -> struct_pb2.Struct:
        self.remember(props)
        out = struct_pb2.Struct()
        for key, value in props.items():
            encoded = self._value(key, value, keep_unknowns)
            if encoded is not None:
                out.fields[key].CopyFrom(encoded)
        return out

    def _value(self, key: str, value: Any, keep_unknowns: bool) -> struct_pb2.Value | None:
        if is_unknown(value):
            if not keep_unknowns:
                raise ValueError(
                    f"property {key!r} is unknown outside a preview; the engine only sends known values then"
                )
            return struct_pb2.Value(string_value=UNKNOWN_STRING_VALUE)
        if isinstance(value, Secret):
            if not self.accept_secrets:
                return self._value(key, value.value, keep_unknowns)
            inner = self._value(key, value.value, keep_unknowns)
            if inner is None:
                return None
            wrapped = struct_pb2.Struct()
            wrapped.fields[_SIG_KEY].string_value = _SECRET_SIG
            wrapped.fields["value"].CopyFrom(inner)
            return struct_pb2.Value(struct_value=wrapped)
        if value is None:
            return struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
        if isinstance(value, bool):
            return struct_pb2.Value(bool_value=value)
        if isinstance(value, (int, float)):
            return struct_pb2.Value(number_value=float(value))  # a double, as protobuf Struct has no integers
        if isinstance(value, str):
            return struct_pb2.Value(string_value=value)
        if isinstance(value, os.PathLike):
            return struct_pb2.Value(string_value=os.fspath(value))
        if isinstance(value, Mapping):
            return struct_pb2.Value(struct_value=self.encode(value, keep_unknowns=keep_unknowns))
        if isinstance(value, (list, tuple)):
            items = struct_pb2.ListValue()
            for item in value:
                encoded = self._value(key, item, keep_unknowns)
                items.values.add().CopyFrom(encoded or struct_pb2.Value(null_value=struct_pb2.NULL_VALUE))
            return struct_pb2.Value(list_value=items)
        raise TypeError(f"property {key!r}: a {type(value).__name__} cannot be sent to a provider")

    def decode(self, struct: struct_pb2.Struct, *, keep_unknowns: bool, reject_unknowns: bool = False) -> dict:
        out: dict[str, Any] = {}
        for key, value in struct.fields.items():
            decoded, present = self._decode_value(key, value, keep_unknowns, reject_unknowns)
            if present:
                out[key] = decoded
        return out

    def _decode_value(self, key: str, value: struct_pb2.Value, keep: bool, reject: bool) -> tuple[Any, bool]:
        kind = value.WhichOneof("kind")
        if kind == "null_value" or kind is None:
            return None, True
        if kind == "bool_value":
            return value.bool_value, True
        if kind == "number_value":
            return value.number_value, True
        if kind == "string_value":
            if value.string_value in UNKNOWN_SENTINELS:
                if reject:
                    raise ProviderHostError(f"the provider returned an unknown value for {key!r} outside a preview")
                return (UNKNOWN, True) if keep else (None, False)
            return value.string_value, True
        if kind == "list_value":
            items = []
            for item in value.list_value.values:
                decoded, present = self._decode_value(key, item, keep, reject)
                if present:
                    items.append(decoded)
            return items, True
        fields = value.struct_value.fields
        if _SIG_KEY in fields and fields[_SIG_KEY].string_value == _SECRET_SIG:
            inner, present = self._decode_value(key, fields["value"], keep, reject)
            if present:
                self.remember(Secret(inner))
            return Secret(inner), present
        return self.decode(value.struct_value, keep_unknowns=keep, reject_unknowns=reject), True


def annotate_secrets(outs: dict[str, Any], ins: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's annotateSecrets: a result property whose same-named input held a secret becomes secret."""
    for key, in_value in ins.items():
        if key not in outs:
            continue
        out_value = outs[key]
        if isinstance(out_value, dict) and isinstance(in_value, Mapping):
            annotate_secrets(out_value, in_value)
        elif not isinstance(out_value, Secret) and _contains_secrets(in_value):
            outs[key] = Secret(out_value)
    return outs


def _contains_secrets(value: Any) -> bool:
    if isinstance(value, Secret):
        return True
    if isinstance(value, Mapping):
        return any(_contains_secrets(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_secrets(v) for v in value)
    return False


# --- the host -------------------------------------------------------------------------------------------------


def _project_name(cwd: Path) -> str:
    """The project name for URNs: Pulumi.yaml's ``name`` in the program dir, else "project" (the host's own
    default). The host ignores URNs; they are there because the engine always sends them."""
    try:
        data = yaml.safe_load((cwd / "Pulumi.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return "project"
    name = data.get("name") if isinstance(data, dict) else None
    return str(name) if name else "project"


class ProviderHost:
    """``python -m pulumi.dynamic`` serving ``provider``, driven as the engine drives it. A context manager."""

    def __init__(
        self,
        provider: pulumi.dynamic.ResourceProvider,
        *,
        cwd: Path,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        resource_type: str = "pulumi-python:dynamic:Resource",
        name: str = "resource",
        stack: str = "dev",
        project: str | None = None,
    ) -> None:
        """``env`` is laid over this process's environment; ``timeout`` bounds start-up and every RPC except
        Create, Update and Delete (which, like the engine without customTimeouts, wait for the provider)."""
        self.cwd = Path(cwd).resolve()
        self.python = python
        self.env = dict(env or {})
        self.timeout = timeout
        self.resource_type = resource_type
        self.urn = f"urn:pulumi:{stack}::{project or _project_name(self.cwd)}::{resource_type}::{name}"
        self.name = name
        self._wire = _Wire()
        blob, contains_secrets = _serialize(True, serialize_provider, provider)
        always = getattr(provider, "serialize_as_secret_always", True)
        self._provider_value: Any = Secret(blob) if (always or contains_secrets) else blob
        self._proc: subprocess.Popen | None = None
        self._stderr: Any = None
        self._stdout_tail: list[str] = []
        self._channel: grpc.Channel | None = None
        self._stub: provider_pb2_grpc.ResourceProviderStub | None = None
        self.capabilities: dict[str, bool] = {}
        self.port: int | None = None

    # -- life cycle --

    def __enter__(self) -> ProviderHost:
        try:
            self.start()
            self.configure()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        env = {**os.environ, **self.env}
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [self.python, "-u", "-m", "pulumi.dynamic"],
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        atexit.register(self.close)
        self.port = self._read_port()
        threading.Thread(target=self._drain_stdout, name="providerhost-stdout", daemon=True).start()
        self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        try:
            grpc.channel_ready_future(self._channel).result(timeout=self.timeout)
        except grpc.FutureTimeoutError:
            raise ProviderHostError(
                f"the provider host printed port {self.port} but did not answer within {self.timeout:.0f} s"
            ) from None
        self._stub = provider_pb2_grpc.ResourceProviderStub(self._channel)

    def _read_port(self) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self.timeout
        line = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProviderHostError(
                        f"the provider host (python -m pulumi.dynamic in {self.cwd}) printed no port within "
                        f"{self.timeout:.0f} s: {self._stderr_tail()}"
                    )
                if not sel.select(timeout=min(remaining, 0.5)):
                    continue
                chunk = os.read(self._proc.stdout.fileno(), 1)
                if not chunk:
                    self._proc.wait(timeout=5)
                    raise ProviderHostError(
                        f"the provider host (python -m pulumi.dynamic in {self.cwd}) exited with "
                        f"{self._proc.returncode} before printing its port: {self._stderr_tail()}"
                    )
                line += chunk
        try:
            return int(line.strip())
        except ValueError:
            raise ProviderHostError(f"the provider host printed {line.strip()[:80]!r} instead of a port") from None

    def _drain_stdout(self) -> None:
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        try:
            for raw in iter(proc.stdout.readline, b""):
                self._stdout_tail = (self._stdout_tail + [raw.decode(errors="replace").rstrip()])[-50:]
        except (OSError, ValueError):  # the pipe was closed by close()
            return

    def _stderr_tail(self, limit: int = 2000) -> str:
        if self._stderr is None:
            return "(no output)"
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode(errors="replace")
        except (OSError, ValueError):
            return "(no output)"
        return self._wire.scrub(text[-limit:].strip()) or "(no output)"

    def close(self) -> None:
        """Close the channel and kill the host's whole process group. Idempotent; safe after any failure."""
        atexit.unregister(self.close)
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            channel.close()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if proc is not None:
            if proc.stdout is not None:
                proc.stdout.close()
            if proc.poll() is None:
                proc.wait(timeout=5)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- RPCs --

    def _call(self, method: str, request: Any, timeout: float | None) -> Any:
        if self._stub is None:
            raise ProviderHostError(f"{method}: the provider host is not running (use it as a context manager)")
        try:
            return getattr(self._stub, method)(request, timeout=timeout)
        except grpc.RpcError as err:
            code = err.code().name if callable(getattr(err, "code", None)) else "UNKNOWN"
            details = (err.details() if callable(getattr(err, "details", None)) else "") or ""
            details = self._wire.scrub(details)
            if code == "UNAVAILABLE" and self._proc is not None and self._proc.poll() is not None:
                details = f"the host exited with {self._proc.returncode}: {self._stderr_tail()}"
            message = _error_message(details)
            if "ModuleNotFoundError" in message or "No module named" in message:
                message += (
                    f" (the host unpickles the provider by reference, importing its module from cwd {self.cwd}: "
                    "start it in the program directory)"
                )
            raise ProviderError(method, code, message, details) from None

    def _with_provider(self, props: Mapping[str, Any]) -> dict[str, Any]:
        return {**{k: v for k, v in props.items() if k != PROVIDER_KEY}, PROVIDER_KEY: self._provider_value}

    @staticmethod
    def _strip(props: dict[str, Any]) -> dict[str, Any]:
        props.pop(PROVIDER_KEY, None)
        return props

    def configure(self) -> dict:
        """Handshake (UNIMPLEMENTED by the Python host), then Configure as the engine sends it; returns the
        capabilities the host answered (acceptSecrets, supportsPreview, acceptResources, acceptOutputs)."""
        handshake = None
        try:
            handshake = self._call(
                "Handshake",
                provider_pb2.ProviderHandshakeRequest(
                    engine_address="", root_directory=str(self.cwd), program_directory=str(self.cwd)
                ),
                self.timeout,
            )
        except ProviderError as err:
            if err.code != "UNIMPLEMENTED":
                raise
        response = self._call(
            "Configure",
            provider_pb2.ConfigureRequest(
                variables={},
                args=struct_pb2.Struct(),
                acceptSecrets=True,
                acceptResources=True,
                sends_old_inputs=True,
                sends_old_inputs_to_delete=True,
                type=_PROVIDER_PACKAGE_TYPE,
                name="default",
            ),
            self.timeout,
        )
        if handshake is not None:  # provider_plugin.go: a handshaking provider supports preview
            caps = {
                "acceptSecrets": bool(handshake.acceptSecrets),
                "supportsPreview": True,
                "acceptResources": bool(handshake.acceptResources),
                "acceptOutputs": bool(handshake.acceptOutputs),
            }
        else:
            caps = {
                "acceptSecrets": bool(response.acceptSecrets),
                "supportsPreview": bool(response.supportsPreview),
                "acceptResources": bool(response.acceptResources),
                "acceptOutputs": bool(response.acceptOutputs),
            }
        self.capabilities = caps
        self._wire.accept_secrets = caps["acceptSecrets"]
        return dict(caps)

    def check(self, olds: dict, news: dict, *, preview: bool | None = None) -> CheckOutcome:
        """Check(olds = saved inputs or {}, news = the program's inputs). ``preview`` defaults to "news holds an
        unknown" (the engine's AllowUnknowns is its dry-run flag)."""
        allow = (contains_unknowns(news) or contains_unknowns(olds)) if preview is None else preview
        request = provider_pb2.CheckRequest(
            urn=self.urn,
            name=self.name,
            type=self.resource_type,
            olds=self._wire.encode(self._with_provider(olds) if olds else {}, keep_unknowns=allow),
            news=self._wire.encode(self._with_provider(news), keep_unknowns=allow),
        )
        response = self._call("Check", request, self.timeout)
        inputs = self._strip(self._wire.decode(response.inputs, keep_unknowns=allow, reject_unknowns=not allow))
        if not self._wire.accept_secrets:
            annotate_secrets(inputs, news)
        failures = [(f.property, self._wire.scrub(f.reason)) for f in response.failures]
        return CheckOutcome(inputs, failures)

    def diff(
        self,
        id: str,  # noqa: A002 - the agreed API name
        olds: dict,
        news: dict,
        *,
        old_inputs: dict | None = None,
        preview: bool | None = None,
        ignore_changes: Iterable[str] = (),
    ) -> DiffOutcome:
        """Diff(olds = saved outputs, news = checked inputs, old_inputs = saved inputs, default ``olds``)."""
        allow = contains_unknowns(news) if preview is None else preview
        request = provider_pb2.DiffRequest(
            id=id,
            urn=self.urn,
            name=self.name,
            type=self.resource_type,
            olds=self._wire.encode(self._with_provider(olds), keep_unknowns=allow),
            news=self._wire.encode(self._with_provider(news), keep_unknowns=allow),
            old_inputs=self._wire.encode(
                self._with_provider(old_inputs if old_inputs is not None else olds), keep_unknowns=allow
            ),
            ignoreChanges=list(ignore_changes),
        )
        response = self._call("Diff", request, self.timeout)
        changes = {
            provider_pb2.DiffResponse.DIFF_SOME: True,
            provider_pb2.DiffResponse.DIFF_NONE: False,
        }.get(response.changes)
        return DiffOutcome(
            changes=changes,
            replaces=list(response.replaces),
            stables=list(response.stables),
            delete_before_replace=bool(response.deleteBeforeReplace),
            diffs=list(response.diffs),
        )

    def create(self, inputs: dict, *, preview: bool = False, timeout: float | None = None) -> tuple[str, dict]:
        """Create(properties = checked inputs). In a preview the engine does not call a provider without
        supportsPreview: it returns ("", inputs)."""
        if preview and not self.capabilities.get("supportsPreview"):
            self._wire.remember(inputs)
            return "", dict(inputs)
        request = provider_pb2.CreateRequest(
            urn=self.urn,
            name=self.name,
            type=self.resource_type,
            properties=self._wire.encode(self._with_provider(inputs), keep_unknowns=preview),
            preview=preview,
        )
        response = self._call("Create", request, timeout)
        outs = self._strip(self._wire.decode(response.properties, keep_unknowns=preview))
        if not self._wire.accept_secrets:
            annotate_secrets(outs, inputs)
        return response.id, outs

    def read(self, id: str, props: dict, *, inputs: dict | None = None) -> tuple[str, dict]:  # noqa: A002
        """Read(properties = saved outputs, inputs = saved inputs): what a refresh sends."""
        request = provider_pb2.ReadRequest(
            id=id,
            urn=self.urn,
            name=self.name,
            type=self.resource_type,
            properties=self._wire.encode(self._with_provider(props), keep_unknowns=False),
            inputs=self._wire.encode(self._with_provider(inputs if inputs is not None else props), keep_unknowns=False),
        )
        response = self._call("Read", request, self.timeout)
        outs = self._strip(self._wire.decode(response.properties, keep_unknowns=False))
        if not self._wire.accept_secrets:
            annotate_secrets(outs, props)
        return response.id, outs

    def update(
        self,
        id: str,  # noqa: A002
        olds: dict,
        news: dict,
        *,
        preview: bool = False,
        old_inputs: dict | None = None,
        timeout: float | None = None,
    ) -> dict:
        """Update(olds = saved outputs, news = checked inputs). Not called in a preview (see :meth:`create`)."""
        if preview and not self.capabilities.get("supportsPreview"):
            self._wire.remember(news)
            return dict(news)
        request = provider_pb2.UpdateRequest(
            id=id,
            urn=self.urn,
            name=self.name,
            type=self.resource_type,
            olds=self._wire.encode(self._with_provider(olds), keep_unknowns=False),
            news=self._wire.encode(self._with_provider(news), keep_unknowns=preview),
            old_inputs=self._wire.encode(
                self._with_provider(old_inputs if old_inputs is not None else olds), keep_unknowns=False
            ),
            preview=preview,
        )
        response = self._call("Update", request, timeout)
        outs = self._strip(self._wire.decode(response.properties, keep_unknowns=preview))
        if not self._wire.accept_secrets:
            annotate_secrets(outs, news)
        return outs

    def delete(self, id: str, props: dict, *, old_inputs: dict | None = None, timeout: float | None = None) -> None:  # noqa: A002
        """Delete(properties = saved outputs, old_inputs = saved inputs)."""
        request = provider_pb2.DeleteRequest(
            id=id,
            urn=self.urn,
            name=self.name,
            type=self.resource_type,
            properties=self._wire.encode(self._with_provider(props), keep_unknowns=False),
            old_inputs=self._wire.encode(
                self._with_provider(old_inputs if old_inputs is not None else props), keep_unknowns=False
            ),
        )
        result = self._call("Delete", request, timeout)
        assert isinstance(result, empty_pb2.Empty)

    # -- what the engine's step generator does with them --

    def up(self, news: dict, state: ResourceState | None = None, *, preview: bool = False) -> tuple[str, ResourceState]:
        """One resource's part of ``pulumi up`` (or ``preview``): Check, then Create, or Diff and Update/replace.
        Returns (operation, new state); operation is "create", "update", "replace" or "same". Check failures
        raise :class:`InvalidInputs`, as the engine stops on them."""
        checked = self.check(state.inputs if state else {}, news, preview=preview)
        if checked.failures:
            raise InvalidInputs(checked.failures)
        if state is None:
            new_id, outs = self.create(checked.inputs, preview=preview)
            return "create", ResourceState(new_id, checked.inputs, outs)
        diff = self.diff(state.id, state.outputs, checked.inputs, old_inputs=state.inputs, preview=preview)
        changed = diff.changes
        if changed is None:  # DIFF_UNKNOWN: the engine compares old and new inputs itself
            changed = redacted(reveal(state.inputs)) != redacted(reveal(checked.inputs))
        if not changed:
            return "same", ResourceState(state.id, checked.inputs, state.outputs)
        if diff.replaces:
            if diff.delete_before_replace and not preview:
                self.delete(state.id, state.outputs, old_inputs=state.inputs)
            new_id, outs = self.create(checked.inputs, preview=preview)
            if not diff.delete_before_replace and not preview:
                self.delete(state.id, state.outputs, old_inputs=state.inputs)
            return "replace", ResourceState(new_id, checked.inputs, outs)
        outs = self.update(state.id, state.outputs, checked.inputs, old_inputs=state.inputs, preview=preview)
        return "update", ResourceState(state.id, checked.inputs, outs)

    def refresh(self, state: ResourceState) -> ResourceState:
        new_id, outs = self.read(state.id, state.outputs, inputs=state.inputs)
        return ResourceState(new_id or state.id, state.inputs, outs)

    def destroy(self, state: ResourceState) -> None:
        self.delete(state.id, state.outputs, old_inputs=state.inputs)


__all__ = [
    "UNKNOWN",
    "CheckOutcome",
    "DiffOutcome",
    "InvalidInputs",
    "ProviderError",
    "ProviderHost",
    "ProviderHostError",
    "ResourceState",
    "Secret",
    "annotate_secrets",
    "contains_unknowns",
    "is_unknown",
    "redacted",
    "reveal",
    "secret",
]
