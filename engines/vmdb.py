"""The database on a private VM: what ``mysql-vm``, ``mariadb-vm`` and ``postgresql-vm`` share.

Pure at import (standard library only; ``policy/rules.py`` imports the engine registry in the policy pack's own
virtualenv): jinja2 and PyYAML are imported inside ``render_cloud_init``, pulumi/pulumi_oci inside ``build_db_vm``.

What a DB VM is (ENGINES.md, "VM engines"):
- an ``oci.core.Instance`` in the PRIVATE subnet without a public IP, hostname label ``db``, Oracle Linux 9, shape
  ``VM.Standard.E2.1.Micro`` by default (the Always Free pool it shares with the app VM) or ``VM.Standard.A1.Flex``;
- cloud-init installs the server from Oracle Linux 9's own AppStream repository (reached through the private
  subnet's service gateway, components/network.py), makes a self-signed TLS certificate at boot, listens on the
  private IP only, requires TLS for TCP clients, opens the DB port in firewalld to the app subnet only, and creates
  the admin user limited to the VCN from a VERIFIER, never the password:
  * MySQL 8.0 / MariaDB: the mysql_native_password hash ``*HEX(SHA1(SHA1(password)))`` used with
    ``IDENTIFIED WITH mysql_native_password AS '*...'`` (MySQL 8.0 reference manual, CREATE USER "auth_option";
    MariaDB knowledge base, CREATE USER "IDENTIFIED {VIA|WITH} mysql_native_password {USING|AS} 'hash'"; the hash
    is MySQL's PASSWORD() of 4.1+: SHA1(SHA1(pw)) in upper-case hex after '*', as in MySQL's sql/auth/password.cc
    make_scrambled_password);
  * PostgreSQL: a SCRAM-SHA-256 verifier ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (RFC 5802
    section 3 and RFC 7677; PostgreSQL's src/common/scram-common.c scram_build_secret writes exactly this form, and
    CREATE ROLE stores a password given "already in SCRAM-encrypted format" as-is: PostgreSQL docs, CREATE ROLE,
    "ENCRYPTED").
  The salt is derived from the password and a per-stack context (HMAC-SHA-256), so the same stack renders the same
  user_data on every run: a user_data change replaces the instance (terraform-provider-oci v8.28.0
  internal/service/core/core_instance_resource.go:1054-1059, ForceNewIfChange on metadata.user_data and
  ssh_authorized_keys), which would wipe the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).parent / "templates"
DB_VM_HOSTNAME_LABEL = "db"
OS_USER = "opc"  # the default user of Oracle Linux platform images
SETUP_SCRIPT = "/usr/local/sbin/oci-dblab-db-setup"
SETUP_LOG = "/var/log/oci-dblab-db-setup.log"

# Always Free: two VM.Standard.E2.1.Micro per tenancy (the app VM and the DB VM use both), or the A1 Flex pool
# (OCI docs, "Always Free Resources": Compute; https://docs.oracle.com/iaas/Content/FreeTier/freetier_topic-Always_Free_Resources.htm).
DEFAULT_DB_VM_SHAPE = "VM.Standard.E2.1.Micro"
FLEX_DB_VM_SHAPE = "VM.Standard.A1.Flex"
DB_VM_SHAPE_PATTERN = r"VM\.Standard\.E2\.1\.Micro|VM\.Standard\.A1\.Flex"

IDENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}\Z")  # the config's rule for user and database names
NATIVE_HASH_RE = re.compile(r"^\*[0-9A-F]{40}\Z")
SCRAM_RE = re.compile(r"^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+\Z")
SCRAM_ITERATIONS = 4096  # PostgreSQL's default scram_iterations (RFC 7677 section 4: at least 4096)


@dataclass(frozen=True)
class Flavor:
    """One DB-VM engine as cloud-init sees it: the OS package, its service, its family's setup template."""

    engine: str  # the dbEngine value
    family: str  # "mysql" | "postgresql"
    package: str  # the Oracle Linux 9 AppStream package of the server
    service: str  # its systemd unit
    port: int
    config_section: str = ""  # MySQL family: the option-file group the server reads
    disable_x_protocol: bool = False  # MySQL 8.0 also listens on 33060 (X Plugin) unless told not to


# ------------------------------------------------------------------------------------------------- verifiers


def mysql_native_password_hash(password: str) -> str:
    """``*`` + upper-case hex of SHA1(SHA1(password)): what mysql_native_password stores (no salt by design)."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode("utf-8")).digest()).hexdigest().upper()  # noqa: S324


def scram_salt(password: str, context: str) -> bytes:
    """A 16-byte salt fixed for (password, context): HMAC-SHA-256 keyed by ``context`` (the stack's resource name).

    It reveals nothing about the password (HMAC output), and it makes the verifier, hence user_data, stable.
    """
    return hmac.new(context.encode("utf-8"), password.encode("utf-8"), hashlib.sha256).digest()[:16]


def scram_sha256_verifier(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 secret (RFC 5802 section 3, RFC 7677) with a given salt.

    The computation is the postgresql family's own (``engines/pgcheck.py`` ``scram_sha256_verifier``: SASLprep, then
    PBKDF2-HMAC-SHA-256, ClientKey/StoredKey/ServerKey); only the salt is chosen here (``scram_salt``).
    """
    from engines.pgcheck import scram_sha256_verifier as verifier

    return verifier(password, salt=salt, iterations=iterations)


def admin_verifier(family: str, password: str, context: str) -> str:
    """The verifier the DB VM's cloud-init creates the admin user from (never the password itself)."""
    if family == "mysql":
        return mysql_native_password_hash(password)
    if family == "postgresql":
        return scram_sha256_verifier(password, scram_salt(password, context))
    raise ValueError(f"unknown engine family {family!r}")


# ------------------------------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class DbVmSettings:
    """Everything the DB VM's cloud-init needs. No password: only the admin user's verifier."""

    app_subnet_cidr: str
    vcn_cidr: str
    admin_user: str
    admin_verifier: str
    # No lab database or app user name: user_data is read once, at the first boot, and those names may change later
    # (pg_hba.conf names neither; the CONNECT privilege keeps the app user in the lab database, engines/pgcheck.py).


def _cidr(value: str, key: str) -> str:
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except ValueError as e:
        raise ValueError(f"{key} {value!r} is not an IPv4 CIDR block like 10.0.0.0/24: {e}") from None


def _ident(value: str, key: str) -> str:
    if not IDENT_RE.match(value):
        raise ValueError(f"{key} {value!r} must start with a letter and hold 1-32 letters, digits or underscores")
    return value


def _cluster_grants(flavor: Flavor, admin_user: str) -> list[str]:
    if flavor.family != "postgresql":
        return []
    from engines.pgcheck import cluster_grants  # the family's own statements (labctl local runs the same)

    return cluster_grants(admin_user)


def template_values(flavor: Flavor, s: DbVmSettings) -> dict[str, Any]:
    """The validated values the setup template sees (every value is checked against a strict pattern first, so
    none can break out of the shell, SQL or configuration text it is placed in)."""
    pattern = NATIVE_HASH_RE if flavor.family == "mysql" else SCRAM_RE
    if not pattern.match(s.admin_verifier):
        raise ValueError(f"the admin verifier is not a {flavor.family} verifier")  # never echoed: it is secret
    app_cidr = _cidr(s.app_subnet_cidr, "the app subnet CIDR")
    vcn_cidr = _cidr(s.vcn_cidr, "the VCN CIDR")
    vcn = ipaddress.IPv4Network(vcn_cidr)
    if not ipaddress.IPv4Network(app_cidr).subnet_of(vcn):
        raise ValueError(f"the app subnet {app_cidr} is not inside the VCN {vcn_cidr}")
    return {
        "engine": flavor.engine,
        "family": flavor.family,
        "service": flavor.service,
        "port": flavor.port,
        "config_section": flavor.config_section,
        "disable_x_protocol": flavor.disable_x_protocol,
        "app_cidr": app_cidr,
        "vcn_cidr": vcn_cidr,
        # MySQL/MariaDB account hosts take a netmask, not a prefix length ('u'@'10.0.0.0/255.255.0.0'): MySQL 8.0
        # reference manual "Specifying Account Names" (netmask notation), MariaDB "CREATE USER" (host netmasks).
        "vcn_netmask_host": f"{vcn.network_address}/{vcn.netmask}",
        "admin_user": _ident(s.admin_user, "dbAdminUser"),
        "admin_verifier": s.admin_verifier,
        "cluster_grants": _cluster_grants(flavor, s.admin_user),
        "setup_log": SETUP_LOG,
    }


def render_setup_script(flavor: Flavor, s: DbVmSettings) -> str:
    """The bash script cloud-init runs once on the DB VM (``{family}.sh.j2`` in engines/templates)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # shell and SQL, not HTML; values are validated in template_values
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sh"] = shlex.quote
    return env.get_template(f"dbvm-{flavor.family}.sh.j2").render(**template_values(flavor, s))


def cloud_config(flavor: Flavor, s: DbVmSettings) -> dict[str, Any]:
    """The #cloud-config document as data: the server package, the setup script, and running it once."""
    script = render_setup_script(flavor, s)
    return {
        # Oracle Linux 9 AppStream (and BaseOS for openssl/firewalld), from the region's OCI yum mirror.
        "package_update": False,
        "packages": [flavor.package, "openssl", "firewalld"],
        "write_files": [
            {"path": SETUP_SCRIPT, "owner": "root:root", "permissions": "0700", "content": script},
        ],
        # The script holds the admin user's verifier: it is removed once it has run (cloud-init keeps its copy of
        # user_data root-only under /var/lib/cloud).
        "runcmd": [[SETUP_SCRIPT], ["rm", "-f", SETUP_SCRIPT]],
    }


def render_cloud_init(flavor: Flavor, s: DbVmSettings) -> str:
    """The DB VM's user data: ``#cloud-config`` YAML, multi-line strings as literal blocks (readable in the console)."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    _Dumper.add_representer(str, _str)
    body = yaml.dump(cloud_config(flavor, s), Dumper=_Dumper, sort_keys=False, width=1000)
    return "#cloud-config\n" + body


def user_data_b64(flavor: Flavor, s: DbVmSettings) -> str:
    """The document base64-encoded, as OCI's ``metadata.user_data`` expects it."""
    return base64.b64encode(render_cloud_init(flavor, s).encode("utf-8")).decode("ascii")


def shell_parts(document: Mapping[str, Any]) -> list[str]:
    """The shell text of a cloud-config document (write_files scripts with a shebang, runcmd as a script), for
    shellcheck in the tests."""
    parts = [f["content"] for f in document.get("write_files", []) if str(f.get("content", "")).startswith("#!")]
    lines = []
    for cmd in document.get("runcmd", []):
        lines.append(" ".join(shlex.quote(str(a)) for a in cmd) if isinstance(cmd, list) else str(cmd))
    if lines:
        parts.append("#!/bin/sh\n" + "\n".join(lines) + "\n")
    return parts


# ------------------------------------------------------------------------------------------------- the engines

INSTANCE = "oci:Core/instance:Instance"  # pulumi_oci 5.5.0 core/instance.py (a neutral type: the app VM is one too)
COMPUTE_SHAPES_TOKEN = "oci:Core/getShapes:getShapes"  # placement picks an AD that offers dbShape (lookups.py)
# A1 Flex for the DB VM: the smallest useful size (1 OCPU, 6 GB), inside the Always Free A1 pool with the app VM's
# default 1 OCPU / 6 GB (2 OCPUs, 12 GB per tenancy: labctl/data/prices.json "a1-halved-2026").
FLEX_OCPUS = 1.0
FLEX_MEMORY_GBS = 6.0
# Boot volume: OCI's custom boot volume size is 50 GB to 32 TB (OCI docs, "Boot Volumes": custom size); the data
# lives on it. Always Free block storage is 200 GB per tenancy, boot volumes included.
MIN_BOOT_GBS = 50
MAX_BOOT_GBS = 32768
# Oracle Cloud Agent compute metrics (components/operations.py VM_NAMESPACE/VM_METRICS, same source): the DB VM is
# watched like the app VM, CPU and memory.
VM_NAMESPACE = "oci_computeagent"
VM_METRICS = {"cpu": "CpuUtilization", "memory": "MemoryUtilization"}
DB_VM_STATES = {"ACTIVE": "RUNNING", "INACTIVE": "STOPPED"}  # config dbState -> the instance's target state
GENERATED_PASSWORD_SPECIALS = "!#%*+-=?_"  # safe in shells, URLs and .env files; no quote, no $, no backslash
LAB_CONCEPTS = (
    "the database runs on its own VM (hostname db) in the private subnet with no public IP: only the app VM reaches "
    "it, over the private IP, through the security list and the DB VM's firewalld, both open to the app subnet only"
)


ENGINE_TAG = "dbEngine"  # freeform tag on the DB VM naming its engine (the reachability model and policy read it)


def _is_db_vm(r: Any, engine: str) -> bool:
    """A declared instance that is this engine's DB VM: a child of the Database component (its URN's type chain says
    so) tagged with the engine's name."""
    from components import ocimodel

    if getattr(r, "resource_type", None) != INSTANCE or "oci-dblab:database:Database$" not in str(r.urn):
        return False
    return ocimodel.get(ocimodel.peek(r.props, "freeformTags"), ENGINE_TAG) == engine


def _endpoints_for(flavor: Flavor) -> Any:
    def endpoints(resources: Any) -> list[Any]:
        from components import ocimodel
        from engines.base import EndpointModel

        out = []
        for r in resources:
            if not _is_db_vm(r, flavor.engine):
                continue
            vnic = ocimodel.peek(r.props, "createVnicDetails")
            out.append(
                EndpointModel(
                    name=r.name,
                    urn=r.urn,
                    resource=r,
                    ports=(flavor.port,),
                    private_ip=ocimodel.peek_output(r, "privateIp"),
                    engine=flavor.engine,
                    subnet_id=ocimodel.peek(vnic, "subnetId"),
                    subnet_prop="createVnicDetails",
                    nsg_ids=tuple(x for x in ocimodel.items(ocimodel.peek(vnic, "nsgIds")) if isinstance(x, str)),
                    note="the DB VM has no public IP (assignPublicIp false, in the private subnet)",
                )
            )
        return out

    return endpoints


def build_db_vm(flavor: Flavor, db: Any, name: str, args: Any) -> Any:
    """Declare the DB VM as a child of the Database component ``db``; return its ``DatabaseEndpoint``."""
    import pulumi
    import pulumi_oci as oci

    from components import ocimods
    from components.database import DatabaseEndpoint
    from components.lookups import newest_image

    ocimods.use("core", "instance")  # only the modules used are imported (components/ocimods.py)
    missing = [k for k in ("app_subnet_cidr", "vcn_cidr", "ssh_public_key") if not getattr(args, k, None)]
    if missing:
        raise ValueError(f"the {flavor.engine} engine needs DatabaseArgs {', '.join(missing)}")
    ignored = [
        k
        for k, v in (
            ("dbBackupRetentionDays", args.backup_retention_days),
            ("dbDeletionProtection", args.deletion_protection),
        )
        if v
    ]
    if ignored:
        pulumi.log.warn(
            f"{', '.join(ignored)}: set for {flavor.engine}, but they configure a managed DB system; a DB VM has no "
            "automatic backups (dump the lab database yourself, e.g. mysqldump or pg_dump from the app VM)"
        )
    # Salt context: this stack's Database component, so the verifier (and user_data) is the same on every run.
    context = f"{pulumi.get_project()}/{pulumi.get_stack()}/{name}"

    def user_data(password: str) -> str:
        settings = DbVmSettings(
            app_subnet_cidr=args.app_subnet_cidr,
            vcn_cidr=args.vcn_cidr,
            admin_user=args.admin_user,
            admin_verifier=admin_verifier(flavor.family, password, context),
        )
        return user_data_b64(flavor, settings)

    image_id = args.image_id or newest_image(args.compartment_id, args.shape, db)
    tags = {**args.tags, ENGINE_TAG: flavor.engine}
    shape_config = None
    if args.shape.endswith(".Flex"):
        shape_config = oci.core.InstanceShapeConfigArgs(ocpus=FLEX_OCPUS, memory_in_gbs=FLEX_MEMORY_GBS)
    vm = oci.core.Instance(
        f"{name}-db-vm",
        compartment_id=args.compartment_id,
        availability_domain=args.availability_domain,
        shape=args.shape,
        shape_config=shape_config,
        display_name=f"{args.name_prefix}-db",
        source_details=oci.core.InstanceSourceDetailsArgs(
            source_type="image", source_id=image_id, boot_volume_size_in_gbs=str(args.storage_gbs)
        ),
        create_vnic_details=oci.core.InstanceCreateVnicDetailsArgs(
            subnet_id=args.subnet_id,
            assign_public_ip="false",  # the private subnet prohibits public IPs anyway
            hostname_label=DB_VM_HOSTNAME_LABEL,
            display_name=f"{args.name_prefix}-db-vnic",
            freeform_tags=tags,
        ),
        # The student's key (debugging through the app VM as a jump host, once someone opens port 22 from the app
        # subnet on purpose) and the cloud-init document, which holds the admin user's verifier: secret.
        metadata={
            "ssh_authorized_keys": args.ssh_public_key,
            "user_data": pulumi.Output.secret(pulumi.Output.from_input(db.admin_password).apply(user_data)),
        },
        # As the app VM (components/compute.py): IMDS v2 only, boot volume encrypted in transit.
        instance_options=oci.core.InstanceInstanceOptionsArgs(are_legacy_imds_endpoints_disabled=True),
        launch_options=oci.core.InstanceLaunchOptionsArgs(is_pv_encryption_in_transit_enabled=True),
        # config dbState (labctl class stop|start): always sent, RUNNING too, so a later start undoes a stop
        # (`state` Optional+Computed, STOPPED|RUNNING: core_instance_resource.go:1020-1028; a change is an in-place
        # InstanceAction STOP/START, :1131-1150). A stopped VM.Standard.A1.Flex is not billed for OCPUs and memory,
        # its boot volume still is; an E2.1.Micro is free either way.
        state=DB_VM_STATES[args.state],
        freeform_tags=tags,
        opts=pulumi.ResourceOptions(
            parent=db,
            # metadata: a change of user_data or ssh_authorized_keys REPLACES the instance (terraform-provider-oci
            # v8.28.0 core_instance_resource.go:1054-1059), and the database with it. cloud-init runs once anyway;
            # after creation change the admin password in the database (README, "Changing the password").
            # sourceDetails.sourceId and availabilityDomain: as the app VM (components/compute.py).
            ignore_changes=["metadata", "sourceDetails.sourceId", "availabilityDomain"],
        ),
    )
    hostname = pulumi.Output.concat(DB_VM_HOSTNAME_LABEL, ".", args.subnet_domain)
    return DatabaseEndpoint(resource_id=vm.id, private_ip=vm.private_ip, port=flavor.port, hostname=hostname)


def vm_engine(flavor: Flavor, **spec: Any) -> Any:
    """The ``Engine`` of a DB-VM flavor: what the three share, plus the engine's own ``spec`` fields."""
    from engines.base import Engine, password_rule

    def build(db: Any, name: str, args: Any) -> Any:
        return build_db_vm(flavor, db, name, args)

    fields: dict[str, Any] = {
        "name": flavor.engine,
        "family": flavor.family,
        "port": flavor.port,
        "extra_ports": (),
        "default_shape": DEFAULT_DB_VM_SHAPE,
        "shape_pattern": DB_VM_SHAPE_PATTERN,
        "example_shape": DEFAULT_DB_VM_SHAPE,
        "always_free_shape": DEFAULT_DB_VM_SHAPE,
        "min_storage_gbs": MIN_BOOT_GBS,
        "max_storage_gbs": MAX_BOOT_GBS,
        "fixed_storage_gbs": {},
        "default_admin_user": "admin",
        # 8-64 printable ASCII with the four classes, not the user name: the HeatWave rule's classes (one rule for
        # the class) with room for passphrases; printable ASCII is what the SCRAM verifier is computed for.
        "password_problem": password_rule(8, 64),
        "password_specials": GENERATED_PASSWORD_SPECIALS,
        "hostname_label": DB_VM_HOSTNAME_LABEL,
        "resource_types": frozenset(),  # the DB VM is a core Instance, a neutral type (the app VM is one too)
        "endpoint_type": INSTANCE,
        "lab_concepts": LAB_CONCEPTS,
        "shapes_token": COMPUTE_SHAPES_TOKEN,
        "monitoring_namespace": VM_NAMESPACE,
        # "down": the agent's CPU metric gone silent (an absence alarm, as the app VM's vm-down)
        "metrics": {**VM_METRICS, "down": VM_METRICS["cpu"]},
        "alarm_gaps": {
            "storage": "the Oracle Cloud Agent's compute metrics have no file-system usage, only disk bytes and "
            "IOPS (OCI 'Compute Instance Metrics'); watch `df -h /` on the DB VM",
            "connections": "the database server on the VM publishes nothing to OCI Monitoring",
            "backup_failure": "a DB VM has no managed backups; dump the database yourself",
        },
        "free_pools": {"e2_micro_instances": 1},  # on the default shape; A1 Flex uses the A1 pool instead
        "local_server": "mariadb" if flavor.family == "mysql" else "postgresql",
        "needs_os_repositories": True,
        "sizing": {"facts": SIZING},
        # After the instance runs, cloud-init installs and sets up the server: no public measurement of how long
        # that takes on an E2.1.Micro, so the critical path says "at least" (labctl/estimate.py setup_unknown).
        "durations": {
            "endpoint_setup": {
                "seconds": None,
                "sources": [],
                "note": "cloud-init installs and sets up the server after the VM runs (not measured; the check retries "
                "for checkTimeoutSeconds)",
            }
        },
        "stop_via": "the DB VM's instance state RUNNING|STOPPED (pulumi_oci 5.5.0 core/instance.py `state`; "
        "terraform-provider-oci v8.28.0 internal/service/core/core_instance_resource.go:1020-1028, InstanceAction "
        "STOP/START on a change :1131-1150)",
        "build": build,
        "endpoints": _endpoints_for(flavor),
    }
    fields.update(spec)
    return Engine(**fields)


# Elastic sizing (labctl/sizing.py): facts of the OCI Terraform provider that pulumi-oci 5.5.0 wraps.
_PROVIDER = "terraform-provider-oci v8.28.0 internal/service/core/core_instance_resource.go"
SIZING: tuple[dict[str, Any], ...] = (
    {
        "key": "dbShape",
        "resource_type": INSTANCE,
        "prop": "shape",
        "in_place": True,
        "source": f"{_PROVIDER}:795 `shape` Optional+Computed, no ForceNew; sent in UpdateInstance by "
        "updateOptionsViaWorkRequest (:4244, shape at :4263)",
        # The DB VM's two shapes differ in processor architecture (E2.1.Micro x86, A1.Flex Arm) and a resize must
        # stay compatible with the image ("Resizing can only happen within the shapes of same family. The shapes
        # must be compatible with the image": terraform-provider-oci v3.56.0 release notes); the image is kept
        # (ignore_changes sourceDetails.sourceId above), so OCI refuses the move in place.
        "note": "but the DB VM's two shapes differ in processor architecture (E2.1.Micro x86, A1.Flex Arm) and the "
        "image is kept, so OCI refuses it: dump the database, then `pulumi up --replace <the DB VM's URN>`",
        "resource_name": "-db-vm",
    },
    {
        "key": "dbShape",
        "resource_type": INSTANCE,
        "prop": "shapeConfig.ocpus",
        "in_place": True,
        "source": f"{_PROVIDER}:831 `shape_config.ocpus` no ForceNew; sent in UpdateInstance (:4282)",
        "note": "the DB VM's Flex size follows dbShape",
        "resource_name": "-db-vm",
        "in_plan": False,
    },
    {
        "key": "dbShape",
        "resource_type": INSTANCE,
        "prop": "shapeConfig.memoryInGbs",
        "in_place": True,
        "source": f"{_PROVIDER}:821 `shape_config.memory_in_gbs` no ForceNew; sent in UpdateInstance (:4282)",
        "note": "the DB VM's Flex size follows dbShape",
        "resource_name": "-db-vm",
        "in_plan": False,
    },
    {
        "key": "dbStorageGbs",
        "resource_type": INSTANCE,
        "prop": "sourceDetails.bootVolumeSizeInGbs",
        "in_place": True,
        "source": f"{_PROVIDER}:920 `source_details.boot_volume_size_in_gbs` Optional+Computed, no ForceNew; resized "
        "by mapToUpdateInstanceBootVolumeSizeInGbs (:4149)",
        "note": "grow only; then extend the file system on the DB VM (sudo /usr/libexec/oci-growfs -y)",
        "resource_name": "-db-vm",
    },
)


def is_db_vm_engine(engine: Any) -> bool:
    """Whether ``engine``'s database is a DB VM (counted and priced as an instance: preflight, estimate)."""
    return getattr(engine, "endpoint_type", None) == INSTANCE


def db_vm_size(shape: str) -> tuple[float | None, float | None]:
    """(OCPUs, memory GB) the DB VM is launched with on ``shape``: the Flex size, or (None, None) for a fixed shape."""
    return (FLEX_OCPUS, FLEX_MEMORY_GBS) if shape.endswith(".Flex") else (None, None)
