"""oci-dblab: the OCI database lab as one Pulumi program. Composition only; the tiers live in components/."""

import pulumi

from components.classtag import student_tag_transformation
from components.compute import AppServer, AppServerArgs
from components.config import load_config
from components.database import Database, DatabaseArgs
from components.envfile import EnvFile, EnvFileArgs
from components.lookups import placement
from components.network import Network, NetworkArgs
from components.operations import Operations, OperationsArgs

cfg = load_config()  # every bad value fails here, before any resource is declared
# Home region (Always Free) and availability domains (by the shapes each offers): also refused before any resource.
where = placement(cfg)
if cfg.student_tag_namespace and cfg.student_id:
    # The class layer exists (labctl class setup): every OCI resource also carries its cost-tracking defined tag.
    pulumi.runtime.register_stack_transformation(student_tag_transformation(cfg.student_tag_namespace, cfg.student_id))

network = Network(
    "lab",
    NetworkArgs(
        compartment_id=cfg.compartment_id,
        vcn_cidr=cfg.vcn_cidr,
        public_subnet_cidr=cfg.public_subnet_cidr,
        private_subnet_cidr=cfg.private_subnet_cidr,
        admin_cidr=cfg.admin_cidr,
        instructor_cidr=cfg.instructor_cidr,
        db_ports=(cfg.engine.port, *cfg.engine.extra_ports),
        service_gateway=cfg.engine.needs_os_repositories,
        name_prefix=cfg.name_prefix,
        tags=cfg.tags,
    ),
)

# AppServer and Database depend on the network only, so OCI builds the VM and the (slow) DB system in parallel.
app = AppServer(
    "lab",
    AppServerArgs(
        compartment_id=cfg.compartment_id,
        subnet_id=network.public_subnet_id,
        availability_domain=where.app_availability_domain,
        shape=cfg.app_shape,
        ocpus=cfg.app_ocpus,
        memory_gbs=cfg.app_memory_gbs,
        image_id=cfg.app_image_id,
        ssh_public_key=cfg.ssh_public_key,
        name_prefix=cfg.name_prefix,
        tags=cfg.tags,
        client_packages=cfg.engine.app_packages(),
    ),
)

db = Database(
    "lab",
    DatabaseArgs(
        engine=cfg.db_engine,
        compartment_id=cfg.compartment_id,
        subnet_id=network.private_subnet_id,
        subnet_domain=network.private_subnet_domain,
        availability_domain=where.db_availability_domain,
        shape=cfg.db_shape,
        storage_gbs=cfg.db_storage_gbs,
        admin_user=cfg.db_admin_user,
        admin_password=pulumi.Output.secret(cfg.db_password) if cfg.db_password else None,
        app_user=cfg.db_app_user,
        backup_retention_days=cfg.db_backup_retention_days,
        deletion_protection=cfg.db_deletion_protection,
        state=cfg.db_state,
        app_subnet_cidr=cfg.public_subnet_cidr,
        vcn_cidr=cfg.vcn_cidr,
        ssh_public_key=cfg.ssh_public_key,
        db_name=cfg.db_name,
        name_prefix=cfg.name_prefix,
        tags=cfg.tags,
    ),
)

# Alarms on the DB and the VM, to one Notifications topic (and alertEmail, when set).
ops = Operations(
    "lab-ops",
    OperationsArgs(
        compartment_id=cfg.compartment_id,
        engine=cfg.engine,
        db_shape=cfg.db_shape,
        db_storage_gbs=cfg.db_storage_gbs,
        db_id=db.endpoint.resource_id,
        app_shape=cfg.app_shape,
        app_instance_id=app.instance_id,
        name_prefix=cfg.name_prefix,
        tags=cfg.tags,
        alert_email=cfg.alert_email,
        lab_hours=cfg.lab_hours,
        db_running=cfg.db_state == "ACTIVE",
    ),
)

# The last hop: app user, .env on this machine and on the VM, and a check that the VM reaches the DB's private IP.
if cfg.connection_check:
    env = EnvFile(
        "lab-env",
        EnvFileArgs(
            app_host=app.public_ip,
            ssh_user=app.ssh_user,
            db_host=db.private_ip,
            db_port=db.port,
            db_hostname=db.hostname,
            db_name=cfg.db_name,
            admin_user=db.admin_user,
            admin_password=db.admin_password,
            app_user=cfg.db_app_user,
            app_password=db.app_password,
            local_path=cfg.env_file_path,
            remote_dir=app.app_dir,
            ssh_private_key_path=cfg.ssh_private_key_path or "",
            check_timeout_seconds=cfg.check_timeout_seconds,
            db_engine=cfg.db_engine,
        ),
    )
    pulumi.export("envFile", {"local": env.path, "remote": env.remote_path})
    pulumi.export("connectionCheck", env.check)
else:
    pulumi.log.warn("connectionCheck is false: no app user, no .env and no connection check were made")
    pulumi.export("connectionCheck", {"ok": None, "skipped": True})

ssh_key_hint = cfg.ssh_private_key_path or "~/.ssh/id_ed25519"
pulumi.export("appPublicIp", app.public_ip)
pulumi.export("appPrivateIp", app.private_ip)
pulumi.export("dbPrivateIp", db.private_ip)
pulumi.export("dbPort", db.port)
pulumi.export("dbHostname", db.hostname)
pulumi.export("dbAdminUser", db.admin_user)
pulumi.export("dbName", cfg.db_name)
pulumi.export("dbAdminPassword", db.admin_password)
pulumi.export("sshCommand", app.public_ip.apply(lambda ip: f"ssh -i {ssh_key_hint} {app.ssh_user}@{ip}"))
pulumi.export("vcnId", network.vcn_id)
pulumi.export("alarmTopicId", ops.topic_id)
