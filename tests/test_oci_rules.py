"""OCI service rules a real `make up` would hit (issue 8 items 2-5), proven on the real program under the mocks.

Each rule's source is cited next to the code that enforces it (components/database.py, compute.py, lookups.py).
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, full_keys, good_raw, named, plan_of

from components.config import ConfigError, parse_config
from components.lookups import always_free_parts, home_region_of, region_from_ad_names
from labctl.estimate import monthly_cost
from labctl.offline import MOCK_COMPUTE_SHAPES, MOCK_DB_SHAPES, MockCloud, Plan, ProgramError, run_program
from policy.rules import check_db_backups_enabled

SUBSCRIPTIONS = "oci:Identity/getRegionSubscriptions:getRegionSubscriptions"


def run(cloud: MockCloud | None = None, extra: dict[str, str] | None = None, **overrides: str | None) -> Plan:
    return run_program({**full_keys(good_raw(**overrides)), **(extra or {})}, cloud=cloud)


def refused(cloud: MockCloud | None = None, extra: dict[str, str] | None = None, **overrides: str | None) -> str:
    with pytest.raises(ProgramError) as e:
        run(cloud, extra, **overrides)
    assert e.value.resources == [], "refused only after resources were declared"
    assert "Traceback" not in str(e.value)
    return str(e.value)


PAID = {"appShape": "VM.Standard.E4.Flex", "dbShape": "MySQL.2", "dbStorageGbs": "100"}


# --- item 2: MySQL.Free sends no backup policy (and no deletion policy) ---


def test_free_db_system_sends_neither_backup_nor_deletion_policy(plan):
    db = named(plan, "lab-mysql")
    assert db.props["shapeName"] == "MySQL.Free"
    assert "backupPolicy" not in db.props
    assert "deletionPolicies" not in db.props


def test_paid_db_system_sends_backups_with_the_service_default_or_the_given_retention():
    default = named(plan_of(**PAID), "lab-mysql").props
    assert default["backupPolicy"] == {"isEnabled": True}  # retention left to the service
    assert default["deletionPolicies"][0]["isDeleteProtected"] is False
    given = named(plan_of(dbBackupRetentionDays="14", dbDeletionProtection="true", **PAID), "lab-mysql").props
    assert given["backupPolicy"] == {"isEnabled": True, "retentionInDays": 14}
    assert given["deletionPolicies"][0]["isDeleteProtected"] is True


def test_retention_with_the_free_shape_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        parse_config(good_raw(dbBackupRetentionDays="7"), "dev")
    [problem] = [p for p in e.value.problems if p.key == "dbBackupRetentionDays"]
    assert "MySQL.Free" in str(problem) and "Always Free" in str(problem)
    assert parse_config(good_raw(), "dev").db_backup_retention_days is None


def test_deletion_protection_with_the_free_shape_is_not_sent_and_says_so():
    p = plan_of(dbDeletionProtection="true")
    assert "deletionPolicies" not in named(p, "lab-mysql").props
    assert any("dbDeletionProtection is not sent for MySQL.Free" in w for w in p.warnings)


def test_backup_rule_passes_free_and_still_catches_a_paid_system_without_backups(plan):
    assert check_db_backups_enabled(plan.resources) == []
    paid = plan_of(**PAID)
    assert check_db_backups_enabled(paid.resources) == []
    resources = copy.deepcopy(paid.resources)
    del named(resources, "lab-mysql").props["backupPolicy"]
    assert [f.rule for f in check_db_backups_enabled(resources)] == ["db-backups-enabled"]


# --- item 3: a newer image never changes an existing VM ---


def set_path(props: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        props = props.setdefault(key, {})
    props[last] = value


def get_path(props: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        props = props[key]
    return props


def engine_inputs(old: dict[str, Any], new: dict[str, Any], ignore_changes: list[str]) -> dict[str, Any]:
    """The inputs the engine diffs: for every ignoreChanges path, the new value is replaced by the old one."""
    merged = copy.deepcopy(new)
    for path in ignore_changes:
        set_path(merged, path, get_path(old, path))
    return merged


def test_a_newer_image_never_changes_the_existing_vm():
    first = named(run(MockCloud(image_build="2026.10.31")), "lab-vm")
    later = named(run(MockCloud(image_build="2027.01.15")), "lab-vm")
    # the look-up does return the newer image ...
    assert first.props["sourceDetails"]["sourceId"] != later.props["sourceDetails"]["sourceId"]
    # ... and the engine sees no change to the instance, because the image is ignored after creation
    assert "sourceDetails.sourceId" in later.ignore_changes
    assert engine_inputs(first.props, later.props, later.ignore_changes) == first.props


# --- item 4: Always Free shapes only in the tenancy's home region ---


def test_free_shapes_outside_the_home_region_are_refused_before_anything_is_created():
    msg = refused(MockCloud(home_region="us-phoenix-1"), {"oci:region": "eu-frankfurt-1"})
    assert "eu-frankfurt-1" in msg and "us-phoenix-1" in msg
    assert "pulumi config set oci:region us-phoenix-1" in msg
    assert "VM.Standard.E2.1.Micro" in msg and "MySQL.Free" in msg


def test_the_region_is_found_from_the_availability_domains_when_oci_region_is_not_in_the_stack():
    msg = refused(MockCloud(region="eu-frankfurt-1", home_region="us-phoenix-1"))
    assert "deploys to region eu-frankfurt-1" in msg and "home region is us-phoenix-1" in msg


def test_the_tenancy_ocid_of_the_provider_config_is_used_without_walking_compartments():
    tenancy = "ocid1.tenancy.oc1..aaaaaaaa2b3c4d5e6f7g2h3i4j5k6m7n8p9q2r3s4t5u6v7w8x9y2z3a4b5c"
    msg = refused(MockCloud(home_region="us-phoenix-1"), {"oci:region": "eu-frankfurt-1", "oci:tenancyOcid": tenancy})
    assert "home region is us-phoenix-1" in msg


def test_the_tenancy_is_found_by_walking_up_nested_compartments():
    msg = refused(MockCloud(home_region="us-phoenix-1", compartment_depth=4), {"oci:region": "eu-frankfurt-1"})
    assert "home region is us-phoenix-1" in msg


def test_the_program_does_not_load_pulumi_oci_identity():
    """Issue 12: importing pulumi_oci.identity costs ~0.9 s; the look-ups use raw invokes with its tokens instead."""
    code = (
        "import sys; sys.path.insert(0, 'tests'); from conftest import plan_of; plan_of(); "
        "print(sorted(m for m in sys.modules if m.startswith('pulumi_oci.identity.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_free_shapes_in_the_home_region_pass(plan):
    p = run(MockCloud(region="us-phoenix-1"), {"oci:region": "us-phoenix-1"})
    assert named(p, "lab-vm").props["availabilityDomain"] == "Mock:US-PHOENIX-1-AD-1"


def test_paid_shapes_outside_the_home_region_are_allowed_and_priced():
    p = run(MockCloud(home_region="us-phoenix-1"), {"oci:region": "eu-frankfurt-1"}, **PAID, appOcpus="1")
    assert named(p, "lab-vm").props["shape"] == "VM.Standard.E4.Flex"
    assert monthly_cost(p.resources).total > 0


@pytest.mark.parametrize(
    ("ocpus", "memory", "free"),
    [("1", "6", True), ("2", "12", True), ("4", "24", False), ("2", "16", False)],
)
def test_a1_flex_counts_as_always_free_only_within_the_free_pool(ocpus, memory, free):
    cloud, extra = MockCloud(home_region="us-phoenix-1"), {"oci:region": "eu-frankfurt-1"}
    overrides = {"appShape": "VM.Standard.A1.Flex", "appOcpus": ocpus, "appMemoryGbs": memory, "dbShape": "MySQL.2"}
    if free:
        assert "VM.Standard.A1.Flex" in refused(cloud, extra, dbStorageGbs="100", **overrides)
    else:
        assert named(run(cloud, extra, dbStorageGbs="100", **overrides), "lab-vm").props["shape"]


def test_when_oci_will_not_tell_the_home_region_the_lab_is_built_with_a_warning():
    p = run_program(full_keys(good_raw()), fail_types={SUBSCRIPTIONS: "404-NotAuthorizedOrNotFound"})
    assert named(p, "lab-vm")
    assert any("could not look up the tenancy's home region" in w and "NotAuthorized" in w for w in p.warnings)


def test_home_region_rules_as_plain_functions():
    subs = [
        {"regionKey": "FRA", "regionName": "eu-frankfurt-1", "isHomeRegion": False},
        {"regionKey": "PHX", "regionName": "us-phoenix-1", "isHomeRegion": False},
    ]
    assert region_from_ad_names(["unja:EU-FRANKFURT-1-AD-3"], subs) == "eu-frankfurt-1"
    assert region_from_ad_names(["Uocm:PHX-AD-1", "Uocm:PHX-AD-2"], subs) == "us-phoenix-1"
    assert region_from_ad_names(["xyz:AP-TOKYO-1-AD-1"], subs) is None
    assert home_region_of("PHX", subs) == "us-phoenix-1"  # by the tenancy's homeRegionKey
    subs[0]["isHomeRegion"] = True
    assert home_region_of("PHX", subs) == "eu-frankfurt-1"  # the subscription's flag wins
    assert always_free_parts("VM.Standard.E4.Flex", 1, 16, "MySQL.2") == []
    assert len(always_free_parts("VM.Standard.E2.1.Micro", None, None, "MySQL.Free")) == 2


# --- item 5: availability domains by the shapes they offer ---

THREE_ADS = MockCloud(
    region="us-ashburn-1",
    compute_shapes=(
        MOCK_COMPUTE_SHAPES - {"VM.Standard.E2.1.Micro"},
        MOCK_COMPUTE_SHAPES,
        MOCK_COMPUTE_SHAPES - {"VM.Standard.E2.1.Micro"},
    ),
    db_shapes=(MOCK_DB_SHAPES - {"MySQL.Free"}, MOCK_DB_SHAPES - {"MySQL.Free"}, MOCK_DB_SHAPES),
)


def test_each_tier_goes_to_an_availability_domain_that_offers_its_shape():
    p = run(THREE_ADS)
    assert named(p, "lab-vm").props["availabilityDomain"] == "Mock:US-ASHBURN-1-AD-2"
    assert named(p, "lab-mysql").props["availabilityDomain"] == "Mock:US-ASHBURN-1-AD-3"


def test_an_existing_lab_never_moves_when_another_availability_domain_starts_to_offer_its_shape():
    first = run(THREE_ADS)
    everywhere = MockCloud(
        region="us-ashburn-1", compute_shapes=(MOCK_COMPUTE_SHAPES,) * 3, db_shapes=(MOCK_DB_SHAPES,) * 3
    )
    later = run(everywhere)
    for name in ("lab-vm", "lab-mysql"):
        old, new = named(first, name), named(later, name)
        assert old.props["availabilityDomain"] != new.props["availabilityDomain"]  # the choice did change ...
        assert "availabilityDomain" in new.ignore_changes  # ... but the engine keeps the existing one
        assert engine_inputs(old.props, new.props, new.ignore_changes) == old.props


def test_paid_shapes_offered_everywhere_take_the_first_availability_domain():
    p = run(THREE_ADS, **PAID, appOcpus="1")
    assert {named(p, n).props["availabilityDomain"] for n in ("lab-vm", "lab-mysql")} == {"Mock:US-ASHBURN-1-AD-1"}


def test_default_mocks_are_a_single_availability_domain_region(plan):
    assert named(plan, "lab-vm").props["availabilityDomain"] == "Mock:MOCK-1-AD-1"
    assert named(plan, "lab-mysql").props["availabilityDomain"] == "Mock:MOCK-1-AD-1"


def test_the_availability_domain_config_overrides_the_choice():
    p = run(THREE_ADS, availabilityDomain="Mock:US-ASHBURN-1-AD-1")
    assert {named(p, n).props["availabilityDomain"] for n in ("lab-vm", "lab-mysql")} == {"Mock:US-ASHBURN-1-AD-1"}


def test_default_mocks_have_the_availability_domain_the_stack_names():
    p = run(availabilityDomain="Uocm:AP-SINGAPORE-1-AD-1", extra={"oci:region": "ap-singapore-1"})
    assert named(p, "lab-vm").props["availabilityDomain"] == "Uocm:AP-SINGAPORE-1-AD-1"


def test_an_availability_domain_not_in_the_region_is_refused():
    msg = refused(THREE_ADS, availabilityDomain="Mock:US-ASHBURN-1-AD-7")
    assert "availabilityDomain: 'Mock:US-ASHBURN-1-AD-7' is not an availability domain of this region" in msg
    assert "Mock:US-ASHBURN-1-AD-1, Mock:US-ASHBURN-1-AD-2, Mock:US-ASHBURN-1-AD-3" in msg


def test_a_shape_no_availability_domain_offers_is_refused_clearly():
    cloud = MockCloud(
        compute_shapes=(MOCK_COMPUTE_SHAPES - {"VM.Standard.E2.1.Micro"},) * 2, db_shapes=(MOCK_DB_SHAPES,) * 2
    )
    msg = refused(cloud)
    assert "appShape: no availability domain of this region offers VM.Standard.E2.1.Micro" in msg
    assert "Mock:MOCK-1-AD-1, Mock:MOCK-1-AD-2" in msg and "availabilityDomain" in msg
    db_msg = refused(MockCloud(db_shapes=(MOCK_DB_SHAPES - {"MySQL.Free"},)))
    assert "dbShape: no availability domain of this region offers MySQL.Free" in db_msg


def test_every_invoke_token_is_the_one_the_installed_pulumi_oci_uses():
    import pulumi_oci

    from components import lookups
    from engines import ENGINES

    package = Path(pulumi_oci.__file__).parent
    tokens = {lookups.TOKEN_ADS, lookups.TOKEN_COMPARTMENT, lookups.TOKEN_TENANCY, lookups.TOKEN_REGION_SUBSCRIPTIONS}
    tokens |= {lookups.TOKEN_COMPUTE_SHAPES} | {e.shapes_token for e in ENGINES.values() if e.shapes_token}
    for token in tokens:
        module = token.split(":")[1].split("/")[0].lower()  # oci:Identity/getTenancy:getTenancy -> identity
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", token.rsplit(":", 1)[1]).lower()  # getTenancy -> get_tenancy
        assert f"'{token}'" in (package / module / f"{name}.py").read_text(), token
