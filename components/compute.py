"""Compute tier: the app VM in the public subnet, reachable by SSH from the admin CIDR only."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_oci as oci

from components import ocimods
from components.cloudinit import APP_DIR, APP_USER, user_data_b64
from components.lookups import newest_image

ocimods.use("core", "instance")  # only the modules used are imported (components/ocimods.py)

IMAGE_PROPERTY = "sourceDetails.sourceId"


@dataclass(frozen=True)
class AppServerArgs:
    compartment_id: str
    subnet_id: pulumi.Input[str]
    availability_domain: str  # chosen by components.lookups.placement
    shape: str
    ssh_public_key: str
    name_prefix: str
    tags: dict[str, str]
    ocpus: float | None = None
    memory_gbs: float | None = None
    image_id: str | None = None
    client_packages: tuple[str, ...] | None = None  # the engine's client (Engine.app_packages); None: the default's


class AppServer(pulumi.ComponentResource):
    """The VM students log in to; cloud-init installs the engine's client and the app directory for ``.env``."""

    instance_id: pulumi.Output[str]
    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    ssh_user: str = APP_USER
    app_dir: str = APP_DIR

    def __init__(self, name: str, args: AppServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-dblab:compute:AppServer", name, None, opts)
        image_id = args.image_id or newest_image(args.compartment_id, args.shape, self)
        shape_config = None
        if args.shape.endswith(".Flex"):
            shape_config = oci.core.InstanceShapeConfigArgs(ocpus=args.ocpus, memory_in_gbs=args.memory_gbs)

        instance = oci.core.Instance(
            f"{name}-vm",
            compartment_id=args.compartment_id,
            availability_domain=args.availability_domain,
            shape=args.shape,
            shape_config=shape_config,
            display_name=f"{args.name_prefix}-app",
            source_details=oci.core.InstanceSourceDetailsArgs(source_type="image", source_id=image_id),
            create_vnic_details=oci.core.InstanceCreateVnicDetailsArgs(
                subnet_id=args.subnet_id,
                assign_public_ip="true",
                hostname_label="app",
                display_name=f"{args.name_prefix}-app-vnic",
                freeform_tags=args.tags,
            ),
            metadata={
                "ssh_authorized_keys": args.ssh_public_key,
                "user_data": user_data_b64(packages=args.client_packages),
            },
            # Only the v2 metadata endpoint (needs a header), which blunts SSRF against instance credentials.
            instance_options=oci.core.InstanceInstanceOptionsArgs(are_legacy_imds_endpoints_disabled=True),
            # Boot volume encrypted in transit (CIS OCI v3.0.0 3.3, checkov CKV_OCI_4). OCI supports it for
            # paravirtualized attachments on VM shapes launched from platform images (docs.oracle.com, Block Volume
            # Encryption; the image capability Storage.ParaVirtualization.EncryptionInTransit), which is every shape
            # components/config.py allows with the default Oracle Linux image. In launch_options (not the top-level
            # field) because the provider updates it in place there (terraform-provider-oci core_instance_resource.go:
            # launch_options.is_pv_encryption_in_transit_enabled has no ForceNew; the top-level one has).
            launch_options=oci.core.InstanceLaunchOptionsArgs(is_pv_encryption_in_transit_enabled=True),
            freeform_tags=args.tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                # The newest image is looked up on every run, and source_details.source_id is updatable in place: the
                # provider re-images the VM through UpdateInstanceSourceViaImageDetails (terraform-provider-oci
                # v8.28.0 internal/service/core/core_instance_resource.go:915 source_id has no ForceNew; :2498 the
                # update). That would wipe ~/app/.env and the SSH host keys. An existing VM keeps its image; to move
                # to a newer one, rebuild it: `pulumi up --replace <the VM's URN>` (README, "Updating the VM image").
                # The AD is chosen on every run too (components/lookups.py placement) and is ForceNew
                # (core_instance_resource.go:45-48): an existing VM stays where it is even if the choice changes.
                ignore_changes=[IMAGE_PROPERTY, "availabilityDomain"],
            ),
        )

        self.instance_id = instance.id
        self.public_ip = instance.public_ip
        self.private_ip = instance.private_ip
        self.register_outputs(
            {"instanceId": self.instance_id, "publicIp": self.public_ip, "privateIp": self.private_ip}
        )
