"""Read-only OCI look-ups that decide where the lab goes, before any resource is declared.

``placement(cfg)`` runs once in ``__main__.py`` right after the config is loaded. It asks OCI (plain invokes, answered
by the provider even in preview) for the region's availability domains, the tenancy's home region and the shapes each
availability domain offers, and refuses, before anything is created:

- an Always Free shape outside the tenancy's home region (it fails there, or is billed);
- a shape that no availability domain of the region offers, or an ``availabilityDomain`` that is not in the region.

The decisions themselves are plain functions (``always_free_parts``, ``home_region_problem``, ``choose_ad``,
``region_from_ad_names``) tested without Pulumi. Look-ups use ``pulumi.runtime.invoke`` with the provider's tokens
instead of ``pulumi_oci.identity`` (importing that module alone costs ~0.9 s, issue 12); the tokens are the ones the
installed pulumi_oci 5.5.0 uses (``pulumi_oci/identity/get_tenancy.py`` etc.).

The newest image is looked up per run too, but an existing VM never follows it (``components/compute.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_oci as oci
from pulumi_oci import _utilities as oci_utilities

import engines
from components import ocimods

ocimods.use("core", "get_images")  # only the modules used are imported (components/ocimods.py)

APP_OS = "Oracle Linux"
APP_OS_VERSION = "9"

# Invoke tokens as pulumi_oci 5.5.0 spells them (pulumi_oci/identity/get_*.py, core/get_shapes.py); each engine's
# shape-list token is in its engine module (engines/<name>.py, Engine.shapes_token).
TOKEN_ADS = "oci:Identity/getAvailabilityDomains:getAvailabilityDomains"
TOKEN_COMPARTMENT = "oci:Identity/getCompartment:getCompartment"
TOKEN_TENANCY = "oci:Identity/getTenancy:getTenancy"
TOKEN_REGION_SUBSCRIPTIONS = "oci:Identity/getRegionSubscriptions:getRegionSubscriptions"
TOKEN_COMPUTE_SHAPES = "oci:Core/getShapes:getShapes"

# Always Free resources exist only in the tenancy's home region: OCI doc "Always Free Resources"
# (https://docs.oracle.com/en-us/iaas/Content/FreeTier/freetier_topic-Always_Free_Resources.htm) for the VMs and the
# A1 pool, "Creating an Always Free DB System" (https://docs.oracle.com/en-us/iaas/mysql-database/doc/creating-always-
# free-db-system.html) for the one MySQL.Free system per tenancy (both pages as cited in public notes, e.g. "only in
# your home region"; the docs themselves were not reachable from here). The same pages name the shapes.
FREE_APP_SHAPE = "VM.Standard.E2.1.Micro"
FREE_POOL_SHAPE = "VM.Standard.A1.Flex"
PAID_DB_EXAMPLE = engines.get(engines.DEFAULT).paid_shape or engines.get(engines.DEFAULT).example_shape
FREE_DB_SHAPES = frozenset(e.always_free_shape for e in engines.ENGINES.values() if e.always_free_shape)  # MySQL.Free
# The A1 pool: 1,500 OCPU hours and 9,000 GB hours a month, "equivalent to 2 OCPUs and 12 GB of memory" (same OCI
# page, as of June 2026; labctl/data/prices.json source "a1-halved-2026"). An A1 VM within it is an Always Free VM.
A1_FREE_OCPUS = 2.0
A1_FREE_MEMORY_GBS = 12.0

MAX_COMPARTMENT_DEPTH = 10  # parents walked before giving up (a guard against a loop in the answers)


class PlacementError(Exception):
    """The lab cannot be placed in this region; the message says why and what to change."""


@dataclass(frozen=True)
class Placement:
    """Where the lab goes. ``region``/``home_region`` are None when OCI would not tell (the guard was skipped)."""

    region: str | None
    home_region: str | None
    app_availability_domain: str
    db_availability_domain: str


# --- pure decisions ---------------------------------------------------------------------------------------------------


def always_free_parts(
    app_shape: str, app_ocpus: float | None, app_memory_gbs: float | None, db_shape: str
) -> list[str]:
    """The chosen shapes that are Always Free ones (and so exist only in the home region), as readable labels."""
    parts = []
    if app_shape == FREE_APP_SHAPE:
        parts.append(f"appShape {app_shape}")
    elif (
        app_shape == FREE_POOL_SHAPE
        and (app_ocpus or 1) <= A1_FREE_OCPUS
        and (app_memory_gbs or 6) <= A1_FREE_MEMORY_GBS
    ):
        parts.append(
            f"appShape {app_shape} ({app_ocpus or 1:g} OCPU, {app_memory_gbs or 6:g} GB: the Always Free A1 pool)"
        )
    if db_shape in FREE_DB_SHAPES:
        parts.append(f"dbShape {db_shape}")
    return parts


def home_region_problem(region: str, home_region: str, free_parts: Sequence[str]) -> str | None:
    """Why Always Free shapes cannot go to ``region``, or None."""
    if not free_parts or region == home_region:
        return None
    return (
        f"this stack deploys to region {region}, but the tenancy's home region is {home_region}, and Always Free "
        f"resources exist only in the home region ({'; '.join(free_parts)}). Outside it they fail or are billed. "
        f"Fix: `pulumi config set oci:region {home_region}` (or choose paid shapes, e.g. appShape VM.Standard.E4.Flex "
        f"and dbShape {PAID_DB_EXAMPLE}, and check their cost with `labctl plan`)."
    )


def region_from_ad_names(ad_names: Sequence[str], subscriptions: Sequence[Mapping[str, Any]]) -> str | None:
    """The region an availability domain list belongs to, matched against the tenancy's region subscriptions.

    AD names are ``<tenancy prefix>:<REGION>-AD-<n>`` where ``<REGION>`` is the region's name (``unja:EU-FRANKFURT-1-
    AD-3``, public apply log in mlinxfeld/terraform-oci-fk-heatwave training/lesson1_free_tier_mds/README.md) or, in the
    oldest regions, its key (``Uocm:PHX-AD-1``).
    """
    for name in ad_names:
        m = re.match(r"^[^:]*:(?P<region>.+)-AD-\d+$", name)
        if not m:
            continue
        tag = m.group("region").upper()
        for sub in subscriptions:
            if tag in (str(sub.get("regionName", "")).upper(), str(sub.get("regionKey", "")).upper()):
                return str(sub.get("regionName"))
    return None


def home_region_of(home_region_key: str | None, subscriptions: Sequence[Mapping[str, Any]]) -> str | None:
    """The home region's name: the subscription flagged ``isHomeRegion``, else the one whose key is the tenancy's
    ``homeRegionKey`` (provider: identity_region_subscriptions_data_source.go:43 is_home_region,
    identity_tenancy_data_source.go:39 home_region_key)."""
    for sub in subscriptions:
        if sub.get("isHomeRegion") is True:
            return str(sub.get("regionName"))
    for sub in subscriptions:
        if home_region_key and str(sub.get("regionKey", "")).upper() == home_region_key.upper():
            return str(sub.get("regionName"))
    return None


def choose_ad(ad_names: Sequence[str], offers: Callable[[str], set[str]], shape: str, key: str) -> str:
    """The first availability domain (in OCI's order) whose shape list offers ``shape``.

    E2.1.Micro, for one, is usually offered in a single AD of a multi-AD region (public list of every region's ADs and
    their free shapes, gist.github.com/danielewood/e731297b1518b8e5af4db39709c27c8f, built from ListShapes per AD).
    """
    for ad in ad_names:
        if shape in offers(ad):
            return ad
    raise PlacementError(
        f"{key}: no availability domain of this region offers {shape} to this compartment (looked in "
        f"{', '.join(ad_names)}). Choose another shape, another region (`pulumi config set oci:region <region>`), or, "
        "if you know an AD that has it, `pulumi config set availabilityDomain <AD name>`."
    )


def check_given_ad(given: str, ad_names: Sequence[str]) -> str:
    if given in ad_names:
        return given
    raise PlacementError(
        f"availabilityDomain: '{given}' is not an availability domain of this region; it has {', '.join(ad_names)}. "
        f"Example: `pulumi config set availabilityDomain {ad_names[0] if ad_names else '<AD name>'}`"
    )


# --- look-ups ---------------------------------------------------------------------------------------------------------


def _invoke(token: str, args: dict[str, Any]) -> dict[str, Any]:
    # The same default options pulumi_oci's own functions pass (its plugin version), so the engine picks the same
    # provider plugin as for the resources.
    result = pulumi.runtime.invoke(token, args, opts=oci_utilities.get_invoke_opts_defaults())
    return dict(result.value or {})


def availability_domains(compartment_id: str) -> list[str]:
    found = _invoke(TOKEN_ADS, {"compartmentId": compartment_id}).get("availabilityDomains") or []
    return [str(ad["name"]) for ad in found]


def tenancy_of(compartment_id: str) -> str:
    """The tenancy OCID: the provider's ``oci:tenancyOcid`` if set, else the compartment's parents walked up."""
    given = pulumi.Config("oci").get("tenancyOcid")
    if given:
        return given
    current = compartment_id
    for _ in range(MAX_COMPARTMENT_DEPTH):
        if current.startswith("ocid1.tenancy."):
            return current
        current = str(_invoke(TOKEN_COMPARTMENT, {"id": current}).get("compartmentId") or "")
        if not current:
            break
    raise PlacementError(f"compartmentId {compartment_id}: could not walk up to its tenancy")


def home_and_current_region(compartment_id: str, ad_names: Sequence[str]) -> tuple[str | None, str | None]:
    tenancy = tenancy_of(compartment_id)
    key = _invoke(TOKEN_TENANCY, {"tenancyId": tenancy}).get("homeRegionKey")
    subs = _invoke(TOKEN_REGION_SUBSCRIPTIONS, {"tenancyId": tenancy}).get("regionSubscriptions") or []
    region = pulumi.Config("oci").get("region") or region_from_ad_names(ad_names, subs)
    return region, home_region_of(key, subs)


def _offered(token: str, compartment_id: str) -> Callable[[str], set[str]]:
    def offers(ad: str) -> set[str]:
        shapes = _invoke(token, {"compartmentId": compartment_id, "availabilityDomain": ad}).get("shapes") or []
        return {str(s.get("name")) for s in shapes}

    return offers


def placement(cfg: Any) -> Placement:
    """Check the region and pick the availability domains for ``cfg`` (a ``LabConfig``).

    Raises ``pulumi.RunError`` (a message, no traceback) when the lab cannot go there.
    """
    try:
        ads = availability_domains(cfg.compartment_id)
        if not ads:
            raise PlacementError(
                f"compartmentId {cfg.compartment_id} lists no availability domains: check the OCID and the region "
                "(oci:region) of this stack"
            )
        free = always_free_parts(cfg.app_shape, cfg.app_ocpus, cfg.app_memory_gbs, cfg.db_shape)
        region = home = None
        if free:
            try:
                region, home = home_and_current_region(cfg.compartment_id, ads)
            except Exception as e:  # e.g. no permission to read the tenancy: say so, do not block the lab
                pulumi.log.warn(
                    f"could not look up the tenancy's home region ({str(e).splitlines()[0] if str(e) else e!r}); "
                    "Always Free shapes work only there, so make sure oci:region is your home region"
                )
            else:
                if not (region and home):
                    pulumi.log.warn(
                        "could not tell this stack's region or the tenancy's home region from OCI's answers; Always "
                        "Free shapes work only in the home region, so make sure oci:region is your home region"
                    )
            if region and home:
                problem = home_region_problem(region, home, free)
                if problem:
                    raise PlacementError(problem)
        if cfg.availability_domain:
            app_ad = db_ad = check_given_ad(cfg.availability_domain, ads)
        else:
            app_ad = choose_ad(ads, _offered(TOKEN_COMPUTE_SHAPES, cfg.compartment_id), cfg.app_shape, "appShape")
            db_token = engines.get(cfg.db_engine).shapes_token
            db_ad = (
                choose_ad(ads, _offered(db_token, cfg.compartment_id), cfg.db_shape, "dbShape") if db_token else app_ad
            )
    except PlacementError as e:
        raise pulumi.RunError(f"{e}\nNothing was created.") from None
    except Exception as e:  # a look-up OCI refused: credentials, region or OCID
        raise pulumi.RunError(
            f"an OCI look-up for compartmentId {cfg.compartment_id} failed: {e}\nCheck your OCI credentials "
            "(~/.oci/config or the oci: provider settings), oci:region and the compartment OCID. Nothing was created."
        ) from None
    return Placement(region=region, home_region=home, app_availability_domain=app_ad, db_availability_domain=db_ad)


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
