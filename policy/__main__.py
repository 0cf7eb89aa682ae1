"""oci-dblab policy pack: ``pulumi preview --policy-pack policy``.

Each rule of ``policy/rules.py`` becomes one ``StackValidationPolicy``; the very same functions run offline in
``labctl plan`` and the tests. Constructing the ``PolicyPack`` below starts the analyzer's gRPC server and blocks,
so never import this module (tests import ``policy.rules``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

# The pack runs with policy/ as its working directory; make ``policy.rules`` importable as it is for labctl.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy.rules import MANDATORY, RULES, Rule  # noqa: E402


def _policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for finding in rule.check(args.resources):
            report_violation(f"{finding.name}: {finding.message} [{finding.source}]", finding.urn or None)

    description = rule.description
    if rule.offline_only_part:
        description += f" (offline only: {rule.offline_only_part})"
    return StackValidationPolicy(
        name=rule.id,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY if rule.level == MANDATORY else EnforcementLevel.ADVISORY,
    )


PolicyPack(name="oci-dblab", policies=[_policy(rule) for rule in RULES])
