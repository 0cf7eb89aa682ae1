"""Read-only OCI look-ups shared by the tiers (availability domain, image)."""

from __future__ import annotations

import pulumi
import pulumi_oci as oci

APP_OS = "Oracle Linux"
APP_OS_VERSION = "9"


def first_availability_domain(compartment_id: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """Name of the first availability domain of the tenancy (OCI lists them in a stable order)."""
    ads = oci.identity.get_availability_domains_output(
        compartment_id=compartment_id, opts=pulumi.InvokeOutputOptions(parent=parent)
    )

    def first(domains: list) -> str:
        if not domains:
            raise pulumi.RunError(
                f"compartmentId {compartment_id} lists no availability domains: check the OCID and the region "
                "(oci:region) of this stack"
            )
        return domains[0].name

    return ads.availability_domains.apply(first)


def newest_image(compartment_id: str, shape: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """OCID of the newest Oracle Linux 9 platform image that runs on ``shape`` (x86 or Arm)."""
    images = oci.core.get_images_output(
        compartment_id=compartment_id,
        operating_system=APP_OS,
        operating_system_version=APP_OS_VERSION,
        shape=shape,
        state="AVAILABLE",
        sort_by="TIMECREATED",
        sort_order="DESC",
        opts=pulumi.InvokeOutputOptions(parent=parent),
    )

    def first(found: list) -> str:
        if not found:
            raise pulumi.RunError(
                f"no {APP_OS} {APP_OS_VERSION} image is available for shape {shape} in this region; set "
                "oci-dblab:appImageId to an image OCID (OCI console: Compute > Images)"
            )
        return found[0].id

    return images.images.apply(first)
