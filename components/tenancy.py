"""The class layer: what exists once per tenancy for a whole class (``tenancy/``, ``labctl class setup|teardown``).

- a tag namespace (named after the class) holding the cost-tracking tag key ``student``; student stacks then carry
  the defined tag ``<namespace>.student = <id>`` (components/classtag.py). At most 10 tag keys may be enabled for
  cost tracking in a tenancy at a time (OCI docs "Using Cost-Tracking Tags", .../Tagging/Tasks/
  usingcosttrackingtags.htm), so there is one per class, never one per student;
- the instructor's Notifications topic, with an EMAIL subscription when the class file gives ``instructorEmail``;
- optionally a class compartment with one compartment per student (``studentCompartments: true``), and per student a
  compartment quota that keeps it to the compute shapes the class allows (``allowedShapes``);
- optionally a monthly budget per student (``monthlyBudgetUsd``), targeting the student's compartment or, without
  compartments, the student's cost-tracking tag value, with alert rules at 50/80/100 % of the actual spend and 100 %
  of the forecast, mailed to the instructor.

Teardown retires instead of deleting the tag: deleting a tag definition removes it from every resource in the
tenancy, may take up to 48 hours, and blocks any other tag deletion in the tenancy meanwhile (OCI API DeleteTag:
"This can take up to 48 hours ... you cannot start either the BulkDeleteTags or the CascadeDeleteTagNamespace
operation until this process completes"; the OCI Terraform provider skips tag deletion in its own tests for the same
reason, terraform-provider-oci internal/service/identity/identity_tag_namespace_resource.go
``deleteIdentityTagNamespace``). A retired tag can no longer be applied but stays on the resources it was applied to,
still usable in searching and reporting (OCI docs "Retiring and Reactivating Tag Definitions"), so the semester's
usage report still groups by it. Turning cost tracking off at teardown frees the tag's place among the 10 (the limit
counts keys "enabled for cost-tracking ... at a time"). The namespace and the tag are ``retain_on_delete``: a destroy
forgets them instead of starting the deletion; the next class uses a new ``name``.

Pure parts (``parse_layer``, ``quota_statements``, ``budget_rules``) are tested without Pulumi.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pulumi
import pulumi_oci as oci

from components import ocimods
from components.classtag import NAMESPACE_EXAMPLE, TAG_KEY, budget_tag_target, check_namespace, defined_tag_key

STUDENT_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?\Z")  # components/config.py STUDENT_RE
OCID_TENANCY_RE = re.compile(r"^ocid1\.tenancy\.oc[0-9]+\.[a-z0-9-]*\.[a-z0-9]{16,}\Z")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL_RE = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+\Z")

# Compartment quota names of the compute-core family per VM shape (statement grammar: OCI docs "Quota Policy Syntax",
# https://docs.oracle.com/iaas/Content/Quotas/Concepts/quota_policy_syntax.htm: `set|zero <family> quota(s)
# [<name>] [to <n>] in compartment <path>`). Each name with its source; a shape without a known name is refused.
COMPUTE_CORE_QUOTAS: dict[str, str] = {
    # OCI's own LimitExceeded message for the Always Free micro VM names this limit ("The following service limits
    # were exceeded: standard-e2-micro-core-count", public apply logs of terraform-provider-oci users).
    "VM.Standard.E2.1.Micro": "standard-e2-micro-core-count",
    # public quota statements: "set compute-core quota standard-a1-core-count to 2 in compartment ..." (and the
    # same name in OCI's LimitExceeded message for A1: "standard-a1-memory-count, standard-a1-core-count").
    "VM.Standard.A1.Flex": "standard-a1-core-count",
    # OCI docs "Quota Policy Syntax": "a valid quota in the compute-core family is standard-e4-core-count".
    "VM.Standard.E4.Flex": "standard-e4-core-count",
    # public `oci limits quota create` statements: "set compute-core quota standard-e5-core-count to 8 in tenancy".
    "VM.Standard.E5.Flex": "standard-e5-core-count",
    # OCI docs "Sample Quotas": "standard2-core-count" limits "VM.Standard2 and BM.Standard2" cores.
    **{f"VM.Standard2.{n}": "standard2-core-count" for n in (1, 2, 4, 8, 16, 24)},
}
QUOTA_FAMILY = "compute-core"

# Budget alert rules: 50/80/100 % of the actual spend and 100 % of the forecast (issue 13). pulumi_oci 5.5.0
# budget/rule.py: type ACTUAL|FORECAST, threshold_type PERCENTAGE|ABSOLUTE, `recipients` (e-mail addresses): a rule
# mails its recipients; it has no Notifications topic destination.
BUDGET_RULES: tuple[tuple[str, int], ...] = (("ACTUAL", 50), ("ACTUAL", 80), ("ACTUAL", 100), ("FORECAST", 100))
MAX_BUDGET = 100_000  # a sanity bound (a class lab's monthly budget per student), not an OCI limit

KEYS: dict[str, str] = {
    "name": f"{NAMESPACE_EXAMPLE}  (names the tag namespace, the class compartment, topic, quotas and budgets)",
    "tenancyId": "ocid1.tenancy.oc1..aaaaaaaa…  (budgets, quotas and tag namespaces live in the root compartment)",
    "instructorEmail": "prof@uni.example.edu  (budget alerts and the class topic mail it)",
    "monthlyBudgetUsd": "10  (a whole number per student per month, in the currency of the tenancy's rate card)",
    "studentCompartments": "true  (one compartment per student under the class compartment)",
    "allowedShapes": "[VM.Standard.E2.1.Micro, VM.Standard.A1.Flex]  (needs studentCompartments: true)",
    "ocpusPerStudent": "1  (OCPUs each student compartment may use of each allowed shape)",
}
REQUIRED = ("name", "tenancyId")


class LayerError(ValueError):
    """Every problem of a class file's ``classLayer`` section, each with file, line, key and an example."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"{len(problems)} problem(s) in the class layer; nothing was created:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


@dataclass(frozen=True)
class LayerSpec:
    """The validated class layer: what the tenancy program builds (JSON in its config key ``layer``)."""

    name: str
    tenancy_id: str
    students: tuple[str, ...]
    instructor_email: str | None = None
    monthly_budget_usd: int | None = None
    student_compartments: bool = False
    allowed_shapes: tuple[str, ...] = ()
    ocpus_per_student: int = 1
    retire: bool = False  # teardown's first step: retire the tag and its namespace, cost tracking off
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def tag_namespace(self) -> str:
        return self.name

    @property
    def class_compartment(self) -> str:
        return self.name

    def student_compartment(self, student_id: str) -> str:
        return f"{self.name}-{student_id}"

    def compartment_path(self, student_id: str) -> str:
        """The student compartment as a quota statement names it from the root: ``<class>:<class>-<id>``."""
        return f"{self.class_compartment}:{self.student_compartment(student_id)}"

    def to_json(self) -> str:
        doc = asdict(self)
        doc.pop("warnings")
        return json.dumps(doc, sort_keys=True)


def _where(source: str, lines: Mapping[str, int], key: str) -> str:
    line = lines.get(key) or lines.get("") or 0
    return f"{source}:{line}: classLayer.{key}" if line else f"{source}: classLayer.{key}"


def parse_layer(
    data: Any,
    students: list[str] | tuple[str, ...],
    source: str = "class.yaml",
    lines: Mapping[str, int] | None = None,
) -> LayerSpec:
    """``data`` (the ``classLayer`` mapping of a class file) checked; ``LayerError`` listing every problem.

    ``lines`` maps each key (and ``""`` for the section itself) to its line in ``source``.
    """
    lines = lines or {}
    problems: list[str] = []

    def bad(key: str, what: str) -> None:
        problems.append(f"{_where(source, lines, key)}: {what}. Example: {key}: {KEYS[key]}")

    if not isinstance(data, Mapping):
        raise LayerError(
            [f"{_where(source, lines, '')[:-1]}: must be a mapping of keys, e.g. 'name: {NAMESPACE_EXAMPLE}'"]
        )
    for key in data:
        if key not in KEYS:
            near = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f"did you mean {near[0]}?" if near else f"known keys: {', '.join(KEYS)}"
            problems.append(f"{_where(source, lines, str(key))}: is not a class layer setting; {hint}")
    for key in REQUIRED:
        if data.get(key) in (None, ""):
            bad(key, "is required")
    name = data.get("name")
    if name not in (None, ""):
        why = check_namespace(str(name)) if isinstance(name, str) else "must be text"
        if why:
            bad("name", f"{why}; it becomes compartment names too (letters, digits, '-', '_')")
    tenancy = data.get("tenancyId")
    if tenancy not in (None, "") and not (isinstance(tenancy, str) and OCID_TENANCY_RE.match(tenancy)):
        bad("tenancyId", f"'{tenancy}' is not a tenancy OCID (ocid1.tenancy.…; budgets and quotas live in the root)")
    email = data.get("instructorEmail")
    if email is not None and not (isinstance(email, str) and len(email) <= 254 and EMAIL_RE.match(email.strip())):
        bad("instructorEmail", f"'{email}' is not one e-mail address like name@domain.tld")
    budget = data.get("monthlyBudgetUsd")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, float)):
            bad("monthlyBudgetUsd", f"'{budget}' is not a number")
        elif budget <= 0:
            bad("monthlyBudgetUsd", f"{budget} is not above 0; leave the key out for no budgets")
        elif float(budget) != int(budget):
            # pulumi_oci budget/budget.py `amount`: "expressed as a whole number"
            bad("monthlyBudgetUsd", f"{budget} is not a whole number (OCI budgets take whole amounts)")
        elif budget > MAX_BUDGET:
            bad("monthlyBudgetUsd", f"{budget} is over {MAX_BUDGET:,} per student per month; a typo?")
    comps = data.get("studentCompartments", False)
    if not isinstance(comps, bool):
        bad("studentCompartments", f"'{comps}' is not true or false")
        comps = False
    shapes_raw = data.get("allowedShapes")
    shapes: list[str] = []
    if shapes_raw is not None:
        if not isinstance(shapes_raw, list) or not shapes_raw:
            bad("allowedShapes", "must be a non-empty list of VM shapes")
        else:
            for s in shapes_raw:
                if s in COMPUTE_CORE_QUOTAS:
                    shapes.append(s)
                    continue
                near = difflib.get_close_matches(str(s), COMPUTE_CORE_QUOTAS, n=1, cutoff=0.6)
                hint = f"did you mean {near[0]}? " if near else ""
                bad(
                    "allowedShapes",
                    f"'{s}' is not a shape with a known compartment quota name; {hint}known: "
                    f"{', '.join(sorted(set(COMPUTE_CORE_QUOTAS)))} (components/tenancy.py COMPUTE_CORE_QUOTAS)",
                )
            if comps is not True:
                bad("allowedShapes", "quotas apply to compartments: set studentCompartments: true as well")
    ocpus = data.get("ocpusPerStudent", 1)
    if isinstance(ocpus, bool) or not isinstance(ocpus, int) or not 1 <= ocpus <= 64:
        bad("ocpusPerStudent", f"'{ocpus}' is not a whole number 1..64")
        ocpus = 1
    bad_ids = [s for s in students if not STUDENT_ID_RE.match(s)]
    if bad_ids:
        problems.append(f"{source}: student ids {', '.join(bad_ids[:5])} cannot name compartments or budgets")
    if problems:
        raise LayerError(problems)
    warnings: list[str] = []
    if email is None:
        warnings.append(
            f"{source}: classLayer.instructorEmail is not set: budget alerts and the class topic mail nobody "
            "(they show in the OCI console only)"
        )
    if shapes:
        warnings.append(
            "DB shapes are not held by a quota (the class's dbShape is enforced by each student stack's config); "
            "the quota keeps each student compartment to the allowed VM shapes"
        )
    return LayerSpec(
        name=str(name),
        tenancy_id=str(tenancy),
        students=tuple(students),
        instructor_email=email.strip() if isinstance(email, str) else None,
        monthly_budget_usd=int(budget) if budget is not None else None,
        student_compartments=bool(comps),
        allowed_shapes=tuple(dict.fromkeys(shapes)),
        ocpus_per_student=ocpus,
        warnings=tuple(warnings),
    )


def spec_from_json(text: str) -> LayerSpec:
    """The spec as the tenancy program receives it (``LayerSpec.to_json``), checked again by ``parse_layer``."""
    doc = json.loads(text)
    data = {
        "name": doc.get("name"),
        "tenancyId": doc.get("tenancy_id"),
        "studentCompartments": doc.get("student_compartments", False),
        "ocpusPerStudent": doc.get("ocpus_per_student", 1),
    }
    if doc.get("instructor_email") is not None:
        data["instructorEmail"] = doc["instructor_email"]
    if doc.get("monthly_budget_usd") is not None:
        data["monthlyBudgetUsd"] = doc["monthly_budget_usd"]
    if doc.get("allowed_shapes"):
        data["allowedShapes"] = list(doc["allowed_shapes"])
    spec = parse_layer(data, list(doc.get("students") or []), source="config layer")
    return LayerSpec(**{**asdict(spec), "retire": bool(doc.get("retire", False))})


def quota_statements(spec: LayerSpec, student_id: str) -> list[str]:
    """The quota of one student compartment: nothing of the compute-core family, then each allowed shape's cores.

    ``zero <family> quotas in compartment X`` removes the whole family, the ``set`` lines after it give back what the
    class allows (the same zero-then-set pattern as public quota policies that fence a compartment to A1 shapes).
    """
    if not spec.allowed_shapes:
        return []
    path = spec.compartment_path(student_id)
    out = [f"zero {QUOTA_FAMILY} quotas in compartment {path}"]
    for name in dict.fromkeys(COMPUTE_CORE_QUOTAS[s] for s in spec.allowed_shapes):
        out.append(f"set {QUOTA_FAMILY} quota {name} to {spec.ocpus_per_student} in compartment {path}")
    return out


_STATEMENT_RE = re.compile(
    r"^(?P<action>zero|set|unset) (?P<family>[a-z][a-z0-9-]*) (?:quotas|quota (?P<name>[a-z0-9-]+|/[^/ ]+/))"
    r"(?: to (?P<value>[0-9]+))? in (?:tenancy|compartment (?P<path>[A-Za-z0-9_.:-]+))\Z"
)


def parse_statement(text: str) -> dict[str, str | None]:
    """A quota statement of the grammar in ``quota_statements`` as its parts; ``ValueError`` when outside it."""
    m = _STATEMENT_RE.match(text)
    if not m or (m["action"] == "set") != (m["value"] is not None) or (m["action"] == "set" and not m["name"]):
        raise ValueError(f"{text!r} is not 'zero|set|unset <family> quota(s) [<name>] [to <n>] in compartment <path>'")
    return m.groupdict()


def budget_rules(spec: LayerSpec) -> list[dict[str, Any]]:
    """The alert rules of one student's budget (pure data)."""
    return [
        {
            "type": kind,
            "threshold": pct,
            "threshold_type": "PERCENTAGE",
            "display_name": f"{kind.lower()}-{pct}",
            "recipients": spec.instructor_email,
        }
        for kind, pct in BUDGET_RULES
    ]


def budget_target(spec: LayerSpec, student_id: str) -> tuple[str, str | None]:
    """``(target_type, target)`` of one student's budget: the compartment (its id is known after create, so None
    here) or the tag value ``<namespace>.student.<id>``."""
    if spec.student_compartments:
        return "COMPARTMENT", None
    return "TAG", budget_tag_target(spec.tag_namespace, student_id)


# --- the component ----------------------------------------------------------------------------------------------
class ClassLayer(pulumi.ComponentResource):
    """The tenancy-wide resources of one class (see the module docstring)."""

    tag_namespace_id: pulumi.Output[str]
    topic_id: pulumi.Output[str]
    student_compartments: dict[str, pulumi.Output[str]]
    budgets: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, spec: LayerSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-dblab:class:ClassLayer", name, None, opts)
        ocimods.use("identity", "tag_namespace", "tag", "compartment")
        ocimods.use("ons", "notification_topic", "subscription")
        child = pulumi.ResourceOptions(parent=self)
        tags = {"project": "oci-dblab", "class": spec.name}
        # Tag namespaces live in the tenancy (pulumi_oci identity/tag_namespace.py compartment_id: "The OCID of the
        # tenancy containing the tag namespace"); kept on destroy (module docstring: retire, do not delete).
        keep = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        namespace = oci.identity.TagNamespace(
            f"{name}-tag-namespace",
            compartment_id=spec.tenancy_id,
            name=spec.tag_namespace,
            description=f"oci-dblab class {spec.name}: per-student cost tracking",
            is_retired=spec.retire,
            freeform_tags=tags,
            opts=keep,
        )
        tag = oci.identity.Tag(
            f"{name}-student-tag",
            tag_namespace_id=namespace.id,
            name=TAG_KEY,
            description="The student a resource belongs to (labctl class; budgets and usage reports group by it)",
            is_cost_tracking=not spec.retire,
            is_retired=spec.retire,
            freeform_tags=tags,
            opts=keep,
        )
        self.tag_namespace_id = namespace.id
        after_tag = pulumi.ResourceOptions(parent=self, depends_on=[tag])  # a defined tag must exist before use
        home = spec.tenancy_id
        self.student_compartments = {}
        if spec.student_compartments:
            # enable_delete: without it the provider never deletes a compartment on destroy (and imports one of
            # the same name on create): pulumi_oci identity/compartment.py `enable_delete`.
            klass = oci.identity.Compartment(
                f"{name}-compartment",
                compartment_id=spec.tenancy_id,
                name=spec.class_compartment,
                description=f"oci-dblab class {spec.name}: one compartment per student",
                enable_delete=True,
                freeform_tags=tags,
                opts=child,
            )
            home = klass.id
            for sid in spec.students:
                comp = oci.identity.Compartment(
                    f"{name}-{sid}",
                    compartment_id=klass.id,
                    name=spec.student_compartment(sid),
                    description=f"oci-dblab class {spec.name}: student {sid}",
                    enable_delete=True,
                    freeform_tags={**tags, TAG_KEY: sid},
                    defined_tags=None if spec.retire else {defined_tag_key(spec.tag_namespace): sid},
                    opts=after_tag,
                )
                self.student_compartments[sid] = comp.id
                statements = quota_statements(spec, sid)
                if statements:
                    ocimods.use("limits", "quota")
                    # Quotas are created in the root compartment and name the compartment they cover by its path
                    # (OCI docs "Quota Policy Syntax"); the quota's own name is unique in the tenancy
                    # (pulumi_oci limits/quota.py `name`).
                    oci.limits.Quota(
                        f"{name}-{sid}-quota",
                        compartment_id=spec.tenancy_id,
                        name=f"{spec.student_compartment(sid)}-shapes",
                        description=f"oci-dblab class {spec.name}: student {sid} may use "
                        + ", ".join(spec.allowed_shapes),
                        statements=statements,
                        freeform_tags={**tags, TAG_KEY: sid},
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[comp]),
                    )
        topic = oci.ons.NotificationTopic(
            f"{name}-topic",
            compartment_id=home,
            name=f"{spec.name}-instructor",  # topic names are unique in the tenancy (ons/notification_topic.py)
            description=f"oci-dblab class {spec.name}: the instructor's notifications",
            freeform_tags=tags,
            opts=child,
        )
        self.topic_id = topic.id
        if spec.instructor_email:
            # An EMAIL subscription stays PENDING until the recipient follows the link OCI mails to them.
            oci.ons.Subscription(
                f"{name}-instructor-email",
                compartment_id=home,
                topic_id=topic.id,
                protocol="EMAIL",
                endpoint=spec.instructor_email,
                freeform_tags=tags,
                opts=child,
            )
        for w in spec.warnings:
            pulumi.log.warn(w)
        self.budgets = {}
        if spec.monthly_budget_usd:
            ocimods.use("budget", "budget", "rule")
            for sid in spec.students:
                kind, target = budget_target(spec, sid)
                targets = [self.student_compartments[sid]] if kind == "COMPARTMENT" else [target]
                # Budgets live in the root compartment (pulumi_oci budget/budget.py example: compartment_id =
                # var.tenancy_ocid); a TAG target is "{tagNamespace}.{tagKey}.{tagValue}", exactly one target.
                budget = oci.budget.Budget(
                    f"{name}-{sid}-budget",
                    compartment_id=spec.tenancy_id,
                    amount=spec.monthly_budget_usd,
                    reset_period="MONTHLY",
                    target_type=kind,
                    targets=targets,
                    display_name=f"{spec.student_compartment(sid)}-monthly",
                    description=f"oci-dblab class {spec.name}: student {sid}, {spec.monthly_budget_usd} per month",
                    freeform_tags={**tags, TAG_KEY: sid},
                    opts=after_tag,
                )
                self.budgets[sid] = budget.id
                for rule in budget_rules(spec):
                    oci.budget.Rule(
                        f"{name}-{sid}-{rule['display_name']}",
                        budget_id=budget.id,
                        type=rule["type"],
                        threshold=rule["threshold"],
                        threshold_type=rule["threshold_type"],
                        display_name=rule["display_name"],
                        recipients=rule["recipients"],
                        message=f"oci-dblab class {spec.name}: student {sid} reached {rule['threshold']}% of the "
                        f"monthly budget ({rule['type'].lower()} spend)",
                        freeform_tags={**tags, TAG_KEY: sid},
                        opts=pulumi.ResourceOptions(parent=budget),
                    )
        self.register_outputs(
            {
                "tagNamespaceId": self.tag_namespace_id,
                "topicId": self.topic_id,
                "studentCompartments": self.student_compartments,
                "budgets": self.budgets,
            }
        )
