"""Run the real ``__main__.py`` offline, under Pulumi mocks that stand in for OCI, and record what it declares.

Used by the tests, by ``labctl plan`` / ``labctl diff`` and by the offline class runner. The mocks answer with
deterministic ids and addresses (documentation range 203.0.113.0/24 for public IPs, the first usable host of
each subnet for private ones), so two plans of the same program and config are identical.

A ``RecordingMonitor`` wraps Pulumi's ``MockMonitor`` to keep what the mocks API leaves out: parent,
dependencies, property dependencies, ``ignore_changes``, ``additional_secret_outputs`` and which inputs are
secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import os
import runpy
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pulumi
from google.protobuf import struct_pb2
from pulumi.output import Unknown
from pulumi.runtime import config as runtime_config
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

PROJECT = "oci-dblab"
OFFLINE_ENV = "OCI_DBLAB_OFFLINE"  # components.config.OFFLINE_ENV; not imported, so a plan can run another tree
SECRET_SIG = rpc._special_secret_sig
SIG_KEY = rpc._special_sig_key
REPO_ROOT = Path(__file__).resolve().parent.parent
MOCK_REGION = "mock-1"


@dataclass
class PlannedResource:
    """One resource the program declared. Attribute names follow pulumi-policy's ``PolicyResource``."""

    urn: str
    resource_type: str
    name: str
    parent: str | None
    custom: bool
    props: dict[str, Any]
    outputs: dict[str, Any]
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    secret_paths: set[str] = field(default_factory=set)
    additional_secret_outputs: list[str] = field(default_factory=list)
    ignore_changes: list[str] = field(default_factory=list)
    protect: bool = False
    id: str | None = None
    retain_on_delete: bool = False  # destroy forgets it instead of deleting it (the class layer's tags)


@dataclass
class Plan:
    """Everything one offline run of the program produced."""

    stack: str
    resources: list[PlannedResource]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    warnings: list[str]

    def by_type(self, resource_type: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.resource_type == resource_type]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form with every secret input and output replaced by ``REDACTED``."""
        resources = []
        for r in self.resources:
            props = redact(r.props, r.secret_paths)
            props.pop("__provider", None)  # a dynamic provider's pickled code: secret, and noise
            resources.append(
                {
                    "urn": r.urn,
                    "type": r.resource_type,
                    "name": r.name,
                    "parent": r.parent,
                    "custom": r.custom,
                    "id": r.id,
                    "dependencies": sorted(set(r.dependencies)),
                    "inputs": props,
                    "secretInputs": sorted(p for p in r.secret_paths if p != "__provider"),
                    "ignoreChanges": r.ignore_changes,
                }
            )
        return {
            "stack": self.stack,
            "resources": resources,
            "outputs": {k: REDACTED if k in self.secret_outputs else v for k, v in sorted(self.outputs.items())},
            "secretOutputs": sorted(self.secret_outputs),
            "warnings": self.warnings,
        }

    def by_urn(self, urn: str) -> PlannedResource:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise LookupError(urn)


def secret_paths(value: Any, path: str = "") -> set[str]:
    """Dotted paths of the secret-wrapped values inside a protobuf Struct/Value as the engine receives it."""
    if isinstance(value, struct_pb2.Value):
        kind = value.WhichOneof("kind")
        if kind == "struct_value":
            return secret_paths(value.struct_value, path)
        if kind == "list_value":
            found: set[str] = set()
            for i, item in enumerate(value.list_value.values):
                found |= secret_paths(item, f"{path}[{i}]")
            return found
        return set()
    if isinstance(value, struct_pb2.Struct):
        sig = value.fields.get(SIG_KEY)
        if sig is not None and sig.string_value == SECRET_SIG:
            return {path}
        found = set()
        for key, item in value.fields.items():
            found |= secret_paths(item, f"{path}.{key}" if path else key)
        return found
    return set()


REDACTED = "[secret]"
UNKNOWN_MARKER = "[unknown until up]"


def known_or_marker(value: Any) -> Any:
    """``value`` with Pulumi's unknowns (values only known after a real ``up``) replaced by a readable marker."""
    if isinstance(value, Unknown):
        return UNKNOWN_MARKER
    if isinstance(value, dict):
        return {k: known_or_marker(v) for k, v in value.items()}
    if isinstance(value, list):
        return [known_or_marker(v) for v in value]
    return value


def redact(value: Any, paths: set[str], path: str = "") -> Any:
    """Copy of ``value`` with the values at the dotted ``paths`` replaced by ``REDACTED``."""
    if path in paths:
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, paths, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, paths, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def unwrap_secrets(value: Any) -> Any:
    """The plain value inside secret wrappers (where a value is secret is kept by ``secret_paths``)."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return unwrap_secrets(value.get("value"))
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf carries every number as a double; ports and sizes read better as ints
    return value


def _digest(*parts: str, n: int = 24) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:n]


class ProgramError(Exception):
    """The program failed under the mocks; ``resources`` holds what it had declared before failing."""

    def __init__(self, message: str, resources: list[PlannedResource]) -> None:
        super().__init__(message)
        self.resources = resources


# Every shape the config accepts (components/config.py APP_SHAPE_RE examples): what one AD of the default
# mock region offers.
MOCK_COMPUTE_SHAPES = frozenset(
    {
        "VM.Standard.E2.1.Micro",
        *(f"VM.Standard.{s}.Flex" for s in ("A1", "A2", "A4", "E3", "E4", "E5", "E6")),
        "VM.Standard3.Flex",
        "VM.Optimized3.Flex",
        *(f"VM.Standard.E2.{n}" for n in (1, 2, 4, 8)),
        *(f"VM.Standard2.{n}" for n in (1, 2, 4, 8, 16, 24)),
    }
)


def _engines() -> Any:
    """The engine registry of the program being planned: imported on first use, after ``run_program`` put the
    project's directory first on ``sys.path`` (like ``components``, ``engines`` belongs to the planned tree)."""
    import engines

    return engines


def __getattr__(name: str) -> Any:
    if name == "MOCK_DB_SHAPES":  # every engine's mock shapes (engines/<name>.py mock_shapes), for tests
        return frozenset(s for e in _engines().ENGINES.values() for s in e.mock_shapes)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Region keys of a few real regions (as OCI lists them, e.g. oracle/oci-designer-toolkit
# ocd/packages/desktop/src/data/OcdDefaultCache.ts); others get a made-up three-letter key.
REGION_KEYS = {
    "us-phoenix-1": "PHX",
    "us-ashburn-1": "IAD",
    "us-sanjose-1": "SJC",
    "us-chicago-1": "ORD",
    "uk-london-1": "LHR",
    "eu-frankfurt-1": "FRA",
    "ap-singapore-1": "SIN",
    MOCK_REGION: "MCK",
}


def region_key(region: str) -> str:
    return REGION_KEYS.get(region) or "".join(c for c in region.split("-")[1] if c.isalpha())[:3].upper()


@dataclass(frozen=True)
class MockCloud:
    """The tenancy and region the mocks answer for.

    Default: the stack's ``oci:region`` (else ``mock-1``) is the tenancy's home region and has one availability domain
    (named as the stack's ``availabilityDomain``, if set) that offers every shape. A test can move the home region
    elsewhere, split the region into ADs that offer different shapes, nest the compartment, or publish a newer image.
    """

    region: str | None = None  # None: the stack's oci:region, else MOCK_REGION
    home_region: str | None = None  # None: the same as region
    compute_shapes: tuple[frozenset[str], ...] = (MOCK_COMPUTE_SHAPES,)  # per AD, in OCI's order
    # per AD (same length as compute_shapes); None: every AD offers each engine's mock shapes
    db_shapes: tuple[frozenset[str], ...] | None = None
    image_build: str = "2026.10.31"  # the newest Oracle Linux 9 build the region lists
    compartment_depth: int = 1  # how many compartments deep the stack's compartment sits below the tenancy root
    ad_names: tuple[str, ...] | None = None  # None: Mock:<REGION>-AD-<n>, one per entry of compute_shapes


class InvokeFailed(grpc.RpcError):
    """A data source's error as the engine hands it to the SDK: a gRPC error whose details are the provider's message
    (the SDK raises it from the invoke, where the program can catch it, instead of failing the whole run)."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self._details


class OciMocks(mocks.Mocks):
    """Answers resource registrations and invokes the way OCI would, deterministically."""

    def __init__(
        self,
        stack: str,
        fail_types: Mapping[str, str] | None = None,
        cloud: MockCloud | None = None,
        region: str | None = None,
    ) -> None:
        self.stack = stack
        self.fail_types = dict(fail_types or {})
        self.cloud = cloud or MockCloud()
        self.region = self.cloud.region or region or MOCK_REGION
        self.home_region = self.cloud.home_region or self.region
        self.tenancy_id = f"ocid1.tenancy.oc1..{_digest(stack, 'tenancy', n=60)}"
        self.subnets: dict[str, dict[str, Any]] = {}
        self.vcn_labels: dict[str, str] = {}
        self.compartment_levels: dict[str, int] = {}

    def _ocid(self, kind: str, name: str) -> str:
        return f"ocid1.{kind}.oc1.{self.region}.{_digest(self.stack, kind, name, n=40)}"

    def ad_names(self) -> list[str]:
        if self.cloud.ad_names:
            return list(self.cloud.ad_names)
        return [f"Mock:{self.region.upper()}-AD-{i + 1}" for i in range(len(self.cloud.compute_shapes))]

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict]:
        if args.typ in self.fail_types:
            raise Exception(self.fail_types[args.typ])
        inputs = dict(args.inputs)
        kind = args.typ.rsplit(":", 1)[-1].lower()
        rid = self._ocid(kind, args.name)
        state: dict[str, Any] = dict(inputs)
        t = args.typ
        if t == "oci:Core/vcn:Vcn":
            label = inputs.get("dnsLabel", "vcn")
            self.vcn_labels[rid] = label
            state.update(
                {
                    "defaultSecurityListId": self._ocid("securitylist", args.name + "-default"),
                    "defaultRouteTableId": self._ocid("routetable", args.name + "-default"),
                    "defaultDhcpOptionsId": self._ocid("dhcpoptions", args.name + "-default"),
                    "vcnDomainName": f"{label}.oraclevcn.com",
                    "cidrBlock": (inputs.get("cidrBlocks") or [""])[0],
                    "state": "AVAILABLE",
                }
            )
        elif t == "oci:Core/subnet:Subnet":
            vcn_label = self.vcn_labels.get(inputs.get("vcnId", ""), "vcn")
            domain = f"{inputs.get('dnsLabel', 'subnet')}.{vcn_label}.oraclevcn.com"
            self.subnets[rid] = {"cidr": inputs.get("cidrBlock"), "domain": domain, "next": 2}
            state.update({"subnetDomainName": domain, "virtualRouterIp": self._host(rid, 1), "state": "AVAILABLE"})
        elif t == "oci:Core/instance:Instance":
            vnic = inputs.get("createVnicDetails") or {}
            public = str(vnic.get("assignPublicIp", "false")).lower() == "true"
            state.update(
                {
                    "privateIp": self._next_host(vnic.get("subnetId", "")),
                    "publicIp": f"203.0.113.{10 + int(_digest(self.stack, args.name, n=4), 16) % 240}"
                    if public
                    else "",
                    "state": str(inputs.get("state") or "RUNNING").upper(),  # a target state given is kept
                    "region": self.region,
                }
            )
        elif (engine := _engines().engine_of_type(t)) is not None:
            # the engine's own mock (engines/<name>.py), given the next address of the subnet its inputs name
            ip = self._next_host(self._subnet_in(inputs))
            state = engine.mock_outputs(t, inputs, private_ip=ip) or state
        elif t == "random:index/randomPassword:RandomPassword":
            length = int(inputs.get("length", 16))
            base = "Aa1" + "!" + _digest(self.stack, args.name, n=40)
            state.update({"result": base[:length], "bcryptHash": "$2a$10$" + _digest(args.name, n=53)})
        elif t.startswith("pulumi-python:dynamic"):
            # the connection check cannot run offline: say so instead of inventing a result
            state.update(
                {
                    "path": inputs.get("localPath", ""),
                    "remotePath": f"{inputs.get('remoteDir', '')}/.env",
                    "check": {"ok": None, "offline": True},
                }
            )
        return rid, state

    def call(self, args: mocks.MockCallArgs) -> tuple[dict, list | None]:
        if args.token in self.fail_types:
            raise InvokeFailed(self.fail_types[args.token])
        a = args.args
        comp = a.get("compartmentId", "")
        if args.token == "oci:Identity/getAvailabilityDomains:getAvailabilityDomains":
            return {
                "compartmentId": comp,
                "id": "ads",
                "availabilityDomains": [
                    {"id": self._ocid("availabilitydomain", name), "name": name, "compartmentId": comp}
                    for name in self.ad_names()
                ],
            }, []
        if args.token == "oci:Identity/getCompartment:getCompartment":
            # the stack's compartment sits compartment_depth levels below the root; parents are "lab-up-<level>"
            cid = str(a.get("id", ""))
            level = self.compartment_levels.get(cid, 0) + 1
            parent = self.tenancy_id
            if level < self.cloud.compartment_depth:
                parent = f"ocid1.compartment.oc1..{_digest(self.stack, 'compartment', str(level), n=60)}"
                self.compartment_levels[parent] = level
            return {
                "id": cid,
                "compartmentId": parent,
                "name": "lab",
                "description": "mock compartment",
                "state": "ACTIVE",
                "isAccessible": True,
            }, []
        if args.token == "oci:Identity/getTenancy:getTenancy":
            return {
                "id": a.get("tenancyId"),
                "tenancyId": a.get("tenancyId"),
                "name": "mocktenancy",
                "description": "mock tenancy",
                "homeRegionKey": region_key(self.home_region),
            }, []
        if args.token == "oci:Identity/getRegionSubscriptions:getRegionSubscriptions":
            regions = [self.home_region] + ([self.region] if self.region != self.home_region else [])
            return {
                "id": "subscriptions",
                "tenancyId": a.get("tenancyId"),
                "regionSubscriptions": [
                    {
                        "regionKey": region_key(r),
                        "regionName": r,
                        "isHomeRegion": r == self.home_region,
                        "state": "READY",
                        "tenancyId": a.get("tenancyId"),
                    }
                    for r in regions
                ],
            }, []
        engine = _engines().engine_of_type(args.token)
        if args.token == "oci:Core/getShapes:getShapes" or (engine and engine.shapes_token == args.token):
            per_ad = self.cloud.compute_shapes
            if engine:
                per_ad = self.cloud.db_shapes or (engine.mock_shapes,) * len(per_ad)
            names = self.ad_names()
            ad = a.get("availabilityDomain")
            offered = per_ad[names.index(ad)] if ad in names else frozenset().union(*per_ad)
            if engine:
                return engine.mock_invoke(args.token, a, region=self.region, offered=offered) or {}, []
            shapes = [
                {"name": n, "billingType": "ALWAYS_FREE" if n == "VM.Standard.E2.1.Micro" else "PAID"}
                for n in sorted(offered)
            ]
            return {"compartmentId": comp, "availabilityDomain": ad, "id": "shapes", "shapes": shapes}, []
        if engine is not None:
            return engine.mock_invoke(args.token, a, region=self.region) or {}, []
        if args.token == "oci:Core/getServices:getServices":
            # ListServices as OCI answers it: the region's "All ... Services In Oracle Services Network" label and the
            # Object Storage one (`oci network service list`: cidr-block
            # all-<key>-services-in-oracle-services-network, name "All <KEY> Services In Oracle Services Network";
            # oci-<key>-objectstorage, "OCI <KEY> Object Storage")
            key = region_key(self.region)
            return {
                "id": "services",
                "services": [
                    {
                        "id": self._ocid("service", "all"),
                        "cidrBlock": f"all-{key.lower()}-services-in-oracle-services-network",
                        "description": f"All {key} Services In Oracle Services Network",
                        "name": f"All {key} Services In Oracle Services Network",
                    },
                    {
                        "id": self._ocid("service", "objectstorage"),
                        "cidrBlock": f"oci-{key.lower()}-objectstorage",
                        "description": f"OCI {key} Object Storage",
                        "name": f"OCI {key} Object Storage",
                    },
                ],
            }, []
        if args.token == "oci:Core/getImages:getImages":
            shape = str(a.get("shape", ""))
            arch = "aarch64" if ".A1." in shape or ".A2." in shape or ".A4." in shape else "x86_64"
            build = self.cloud.image_build
            return {
                "compartmentId": comp,
                "id": "images",
                "images": [
                    {
                        "id": self._ocid("image", f"ol9-{arch}-{build}"),
                        "displayName": f"Oracle-Linux-9.6-{arch}-{build}-0",
                        "operatingSystem": "Oracle Linux",
                        "operatingSystemVersion": "9",
                        "state": "AVAILABLE",
                    }
                ],
            }, []
        return {}, []

    def _host(self, subnet_id: str, index: int) -> str:
        info = self.subnets.get(subnet_id)
        if not info or not info.get("cidr"):
            return "10.255.255.254"
        net = ipaddress.ip_network(info["cidr"])
        return str(net.network_address + index)

    def _subnet_in(self, inputs: Any) -> str:
        """The first id of a declared subnet anywhere in ``inputs`` (an engine names it where its API puts it)."""
        if isinstance(inputs, str):
            return inputs if inputs in self.subnets else ""
        values = inputs.values() if isinstance(inputs, Mapping) else inputs if isinstance(inputs, list) else ()
        for v in values:
            found = self._subnet_in(v)
            if found:
                return found
        return ""

    def _next_host(self, subnet_id: str) -> str:
        info = self.subnets.get(subnet_id)
        if not info:
            return self._host(subnet_id, 2)
        ip = self._host(subnet_id, info["next"])
        info["next"] += 1
        return ip


class RecordingMonitor(mocks.MockMonitor):
    """A MockMonitor that also keeps parent, dependencies, options and secret-ness of every registration."""

    def __init__(self, mocks_: mocks.Mocks) -> None:
        super().__init__(mocks_)
        self.records: list[PlannedResource] = []
        # The SDK calls the monitor from its executor threads, and MockMonitor gives each such thread an event loop
        # of its own that nobody closes; at interpreter exit their __del__ then prints "Exception ignored in
        # BaseEventLoop.__del__". We create those loops here instead, so run_program can close them.
        self.thread_loops: list[asyncio.AbstractEventLoop] = []
        self._loops_lock = threading.Lock()

    def _thread_loop(self) -> None:
        if threading.current_thread() is threading.main_thread():
            return
        try:
            asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:  # a worker thread without a loop: MockMonitor would create an unowned one
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            with self._loops_lock:
                self.thread_loops.append(loop)

    def close_thread_loops(self) -> None:
        with self._loops_lock:
            loops, self.thread_loops = self.thread_loops, []
        for loop in loops:
            if not loop.is_running() and not loop.is_closed():
                loop.close()

    def Invoke(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        self._thread_loop()
        return super().Invoke(request)

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        self._thread_loop()
        return super().ReadResource(request)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        self._thread_loop()
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        urn = response.urn
        reg = self.resources.get(urn)
        props = unwrap_secrets(rpc.deserialize_properties(request.object))
        self.records.append(
            PlannedResource(
                urn=urn,
                resource_type=request.type,
                name=request.name,
                parent=request.parent or None,
                custom=bool(request.custom),
                props=props,
                outputs=dict(reg.state) if reg else {},
                dependencies=list(request.dependencies),
                property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
                secret_paths=secret_paths(request.object),
                additional_secret_outputs=list(request.additionalSecretOutputs),
                ignore_changes=list(request.ignoreChanges),
                protect=bool(request.protect),
                id=reg.id if reg else None,
                retain_on_delete=bool(getattr(request, "retainOnDelete", False)),
            )
        )
        return response


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _quiet_after_failure(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """When a program fails, every registration still in flight fails too and asyncio reports each as "never
    retrieved". The failure itself already surfaced as ``ProgramError``; report anything else as usual."""
    if str(context.get("message", "")).endswith("exception was never retrieved"):
        return
    loop.default_exception_handler(context)


@contextmanager
def _pulumi_config(config: Mapping[str, Any], secret_keys: list[str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("PULUMI_CONFIG", "PULUMI_CONFIG_SECRET_KEYS", OFFLINE_ENV)}
    os.environ[OFFLINE_ENV] = "1"
    os.environ["PULUMI_CONFIG"] = json.dumps({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
    os.environ["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(secret_keys)
    runtime_config.set_all_config({}, secret_keys)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_program(
    config: Mapping[str, Any],
    secret_keys: list[str] | None = None,
    stack: str = "dev",
    project_dir: Path | str = REPO_ROOT,
    preview: bool = True,
    fail_types: Mapping[str, str] | None = None,
    cloud: MockCloud | None = None,
) -> Plan:
    """Run ``project_dir/__main__.py`` under the OCI mocks and return what it declared.

    ``config`` uses full keys (``oci-dblab:adminCidr``) and string values, like ``PULUMI_CONFIG``.
    ``fail_types`` maps resource types or invoke tokens to an error the mocks raise (fault injection).
    ``cloud`` describes the tenancy and region the mocks answer for (default: one AD, home region, every shape).
    Exceptions the program raises surface as ``ProgramError`` with the resources declared before the failure.
    """
    project_dir = Path(project_dir).resolve()
    # What the Pulumi CLI does before it starts the program: merge Pulumi.yaml's defaults, refuse missing keys and
    # values of the wrong type (labctl/cliconfig.py). The program then sees exactly what `pulumi up` would give it.
    from labctl.cliconfig import CliConfigError, for_program

    try:
        merged = for_program(config, secret_keys or [], stack, project_dir)
    except CliConfigError as e:
        raise ProgramError(str(e), []) from None
    config, secret_keys = merged.values, list(merged.secret_keys)
    project = merged.project  # oci-dblab, or oci-dblab-class for the class layer (tenancy/)
    main = project_dir / "__main__.py"
    if not sys.path or sys.path[0] != str(project_dir):
        sys.path.insert(0, str(project_dir))  # this tree's `components`, even when another tree is on the path
    region = config.get("oci:region")
    given_ad = str(config.get(f"{PROJECT}:availabilityDomain") or "").strip()
    if cloud is None and given_ad:
        cloud = MockCloud(ad_names=(given_ad,))  # the default region is the stack's: it has the AD the stack names
    oci_mocks = OciMocks(stack, fail_types, cloud, region=str(region) if region else None)
    monitor = RecordingMonitor(oci_mocks)
    handler = _ListHandler()
    logger = logging.getLogger(f"labctl.offline.{stack}")
    logger.propagate = False
    logger.handlers[:] = [handler]
    exported: dict[str, Any] = {}
    secret_outputs: set[str] = set()

    with _pulumi_config(config, list(secret_keys or [])):
        # A fresh event loop per run: when a program fails, Pulumi leaves registrations in flight; on a shared
        # loop they would run inside the next plan of this process and leak resources or errors into it.
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet_after_failure)
        asyncio.set_event_loop(loop)
        settings.SETTINGS.outputs.clear()  # output tasks a failed earlier run left behind (not reset by set_mocks)
        settings.ROOT.set(None)
        mocks.set_mocks(oci_mocks, project=project, stack=stack, preview=preview, logger=logger, monitor=monitor)

        async def collect() -> None:
            root = settings.get_root_resource()
            outputs = dict(getattr(root, "outputs", {}) or {})
            for key, value in outputs.items():
                out = pulumi.Output.from_input(value)
                exported[key] = known_or_marker(await out.future(with_unknowns=True))
                if await out.is_secret():
                    secret_outputs.add(key)

        def program() -> Any:
            runpy.run_path(str(main), run_name="__main__")
            return collect()

        try:
            _sync_await(run_pulumi_func(program))
        except Exception as e:
            raise ProgramError(str(e), list(monitor.records)) from e
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_default_executor())  # join the monitor's worker threads now
            monitor.close_thread_loops()
            loop.close()
            asyncio.set_event_loop(None)
            settings.SETTINGS.outputs.clear()

    return Plan(
        stack=stack,
        resources=sorted(monitor.records, key=lambda r: r.urn),  # registration order varies run to run
        outputs=exported,
        secret_outputs=secret_outputs,
        warnings=list(handler.messages),
    )
