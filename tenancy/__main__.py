"""oci-dblab class layer: what exists once per tenancy for a class (components/tenancy.py). Composition only.

Run by `labctl class setup|teardown` (offline under the same mocks as the student program, or through the Pulumi
CLI); its config key `layer` is the validated class file section, checked again here before anything is declared.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the project's `components`, shared with the student program

import pulumi  # noqa: E402

from components.classtag import defined_tag_key  # noqa: E402
from components.tenancy import ClassLayer, LayerError, spec_from_json  # noqa: E402

try:
    spec = spec_from_json(pulumi.Config().require("layer"))
except (LayerError, ValueError) as e:
    raise pulumi.RunError(f"oci-dblab-class:layer: {e}") from None

layer = ClassLayer("class", spec)
pulumi.export("tagNamespace", spec.tag_namespace)
pulumi.export("studentTagKey", defined_tag_key(spec.tag_namespace))
pulumi.export("tagNamespaceId", layer.tag_namespace_id)
pulumi.export("topicId", layer.topic_id)
pulumi.export("studentCompartments", layer.student_compartments)
pulumi.export("budgets", layer.budgets)
pulumi.export("retired", spec.retire)
