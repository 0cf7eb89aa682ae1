"""Network tier: the VCN, its gateway and route tables, a public (app) and a private (DB) subnet.

Security, by construction:
- public subnet: SSH (22) only from ``admin_cidr`` (and, in a class, the instructor's ``instructor_cidr``);
- private subnet: the database ports only from the public subnet's CIDR (never the VCN, never 0.0.0.0/0),
  no public IPs on its VNICs, and a route table with no route to the internet. When the database runs on a VM of
  its own (``service_gateway``: the DB-VM engines), the private subnet also gets a service gateway route to "All
  <region> Services in Oracle Services Network" (the region's Oracle Linux yum mirror is one of them) and egress
  to that service CIDR label on TCP 443 only: packages, but no internet and no NAT gateway;
- the VCN's default security list is taken over and left empty, so nothing attached to it by accident is open.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_oci as oci

from components import ocimods
from components.netplan import all_oracle_services

# Only the pulumi_oci.core modules declared here are imported (components/ocimods.py; issue 12).
ocimods.use(
    "core",
    "vcn",
    "default_security_list",
    "internet_gateway",
    "route_table",
    "security_list",
    "subnet",
)

VCN_DNS_LABEL = "labvcn"
PUBLIC_DNS_LABEL = "pub"
PRIVATE_DNS_LABEL = "priv"
TCP = "6"  # OCI writes protocols as IANA numbers
ANYWHERE = "0.0.0.0/0"
HTTPS = 443  # the OS package mirror (yum.<region>.oci.oraclecloud.com) is served over HTTPS


@dataclass(frozen=True)
class NetworkArgs:
    compartment_id: str
    vcn_cidr: str
    public_subnet_cidr: str
    private_subnet_cidr: str
    admin_cidr: str
    db_ports: tuple[int, ...]
    name_prefix: str
    tags: dict[str, str]
    instructor_cidr: str | None = None  # a class's instructor: the second SSH source, for the connection check
    # The database is a VM that installs its server from the OS repositories (the DB-VM engines): the private subnet
    # gets a service gateway to Oracle Services Network and HTTPS egress to it (no internet, no NAT).
    service_gateway: bool = False


def _tcp_in(source: str, port: int, description: str) -> oci.core.SecurityListIngressSecurityRuleArgs:
    return oci.core.SecurityListIngressSecurityRuleArgs(
        protocol=TCP,
        source=source,
        source_type="CIDR_BLOCK",
        stateless=False,
        description=description,
        tcp_options=oci.core.SecurityListIngressSecurityRuleTcpOptionsArgs(min=port, max=port),
    )


class Network(pulumi.ComponentResource):
    """VCN with a public subnet for the app VM and a private subnet for the database."""

    vcn_id: pulumi.Output[str]
    public_subnet_id: pulumi.Output[str]
    private_subnet_id: pulumi.Output[str]
    public_subnet_cidr: str
    private_subnet_cidr: str
    private_subnet_domain: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-dblab:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        common = {"compartment_id": args.compartment_id, "freeform_tags": args.tags}
        p = args.name_prefix

        vcn = oci.core.Vcn(
            f"{name}-vcn",
            cidr_blocks=[args.vcn_cidr],
            dns_label=VCN_DNS_LABEL,
            display_name=f"{p}-vcn",
            **common,
            opts=child,
        )

        # Take over the default security list and leave it without rules.
        oci.core.DefaultSecurityList(
            f"{name}-default-sl",
            manage_default_resource_id=vcn.default_security_list_id,
            display_name=f"{p}-default-sl (no rules)",
            ingress_security_rules=[],
            egress_security_rules=[],
            freeform_tags=args.tags,
            opts=child,
        )

        igw = oci.core.InternetGateway(
            f"{name}-igw", vcn_id=vcn.id, enabled=True, display_name=f"{p}-igw", **common, opts=child
        )
        public_rt = oci.core.RouteTable(
            f"{name}-public-rt",
            vcn_id=vcn.id,
            display_name=f"{p}-public-rt",
            route_rules=[
                oci.core.RouteTableRouteRuleArgs(
                    destination=ANYWHERE,
                    destination_type="CIDR_BLOCK",
                    network_entity_id=igw.id,
                    description="internet access for the app VM",
                )
            ],
            **common,
            opts=child,
        )
        # No route to the internet: the database is reachable only from inside the VCN. A DB VM reaches Oracle
        # Services Network (its OS package mirror) through a service gateway, which is not the internet.
        private_routes: list[oci.core.RouteTableRouteRuleArgs] = []
        private_egress: list[oci.core.SecurityListEgressSecurityRuleArgs] = []
        self.service_gateway_id: pulumi.Output[str] | None = None
        if args.service_gateway:
            ocimods.use("core", "service_gateway", "get_services")  # loaded only for a DB VM (tests/test_startup.py)
            services = oci.core.get_services_output(opts=pulumi.InvokeOutputOptions(parent=self))
            osn = services.services.apply(all_oracle_services)
            sgw = oci.core.ServiceGateway(
                f"{name}-sgw",
                vcn_id=vcn.id,
                services=[oci.core.ServiceGatewayServiceArgs(service_id=osn.id)],
                display_name=f"{p}-sgw",
                **common,
                opts=child,
            )
            self.service_gateway_id = sgw.id
            private_routes.append(
                oci.core.RouteTableRouteRuleArgs(
                    destination=osn.cidr_block,
                    destination_type="SERVICE_CIDR_BLOCK",
                    network_entity_id=sgw.id,
                    description="Oracle Services Network (OS package mirror) through the service gateway",
                )
            )
            private_egress.append(
                oci.core.SecurityListEgressSecurityRuleArgs(
                    protocol=TCP,
                    destination=osn.cidr_block,
                    destination_type="SERVICE_CIDR_BLOCK",
                    stateless=False,
                    description="HTTPS to Oracle Services Network only (the OS package mirror)",
                    tcp_options=oci.core.SecurityListEgressSecurityRuleTcpOptionsArgs(min=HTTPS, max=HTTPS),
                )
            )
        private_rt = oci.core.RouteTable(
            f"{name}-private-rt",
            vcn_id=vcn.id,
            display_name=f"{p}-private-rt",
            route_rules=private_routes,
            **common,
            opts=child,
        )

        public_sl = oci.core.SecurityList(
            f"{name}-public-sl",
            vcn_id=vcn.id,
            display_name=f"{p}-public-sl",
            ingress_security_rules=[_tcp_in(args.admin_cidr, 22, "SSH from the admin CIDR only")]
            + (
                [_tcp_in(args.instructor_cidr, 22, "SSH from the instructor's CIDR (class connection check)")]
                if args.instructor_cidr and args.instructor_cidr != args.admin_cidr
                else []
            ),
            # Egress open, as OCI's own default: cloud-init needs package repositories, and the VM reaches the
            # database, DNS and NTP through it. Stateful rules let only the replies back in.
            egress_security_rules=[
                oci.core.SecurityListEgressSecurityRuleArgs(
                    protocol="all",
                    destination=ANYWHERE,
                    destination_type="CIDR_BLOCK",
                    stateless=False,
                    description="all outbound traffic (replies are tracked)",
                )
            ],
            **common,
            opts=child,
        )
        private_sl = oci.core.SecurityList(
            f"{name}-private-sl",
            vcn_id=vcn.id,
            display_name=f"{p}-private-sl",
            ingress_security_rules=[
                _tcp_in(args.public_subnet_cidr, port, f"database port {port} from the app subnet only")
                for port in args.db_ports
            ],
            egress_security_rules=private_egress,
            **common,
            opts=child,
        )

        public = oci.core.Subnet(
            f"{name}-public-subnet",
            vcn_id=vcn.id,
            cidr_block=args.public_subnet_cidr,
            dns_label=PUBLIC_DNS_LABEL,
            display_name=f"{p}-public-subnet",
            route_table_id=public_rt.id,
            security_list_ids=[public_sl.id],
            prohibit_public_ip_on_vnic=False,
            **common,
            opts=child,
        )
        private = oci.core.Subnet(
            f"{name}-private-subnet",
            vcn_id=vcn.id,
            cidr_block=args.private_subnet_cidr,
            dns_label=PRIVATE_DNS_LABEL,
            display_name=f"{p}-private-subnet",
            route_table_id=private_rt.id,
            security_list_ids=[private_sl.id],
            prohibit_public_ip_on_vnic=True,
            prohibit_internet_ingress=True,
            **common,
            opts=child,
        )

        self.vcn_id = vcn.id
        self.public_subnet_id = public.id
        self.private_subnet_id = private.id
        self.public_subnet_cidr = args.public_subnet_cidr
        self.private_subnet_cidr = args.private_subnet_cidr
        self.private_subnet_domain = private.subnet_domain_name
        self.register_outputs(
            {
                "vcnId": self.vcn_id,
                "publicSubnetId": self.public_subnet_id,
                "privateSubnetId": self.private_subnet_id,
                "privateSubnetDomain": self.private_subnet_domain,
            }
        )
