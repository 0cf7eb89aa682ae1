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
from components.lookups import home_and_current_region  # noqa: E402
from components.tenancy import ClassLayer, LayerError, spec_from_json  # noqa: E402

try:
    spec = spec_from_json(pulumi.Config().require("layer"))
except (LayerError, ValueError) as e:
    raise pulumi.RunError(f"oci-dblab-class:layer: {e}") from None

# Compartments (and the tags and quotas beside them) can be created and changed only in the tenancy's home region
# (OCI docs "Managing Regions", .../Identity/regions/managingregions.htm: "Resources that you can create and update
# only in the home region are: ... Compartments"; "When you use the API to update your IAM resources, you must use
# the endpoint for your home region"). Refused here, before anything is declared, when OCI says where home is.
try:
    region, home = home_and_current_region(spec.tenancy_id, [])
except Exception as e:  # e.g. no right to read the tenancy: warn, the API will refuse if it must
    pulumi.log.warn(f"could not look up the tenancy's home region ({str(e).splitlines()[0] if str(e) else e!r})")
else:
    if region and home and region != home:
        raise pulumi.RunError(
            f"the class layer deploys to region {region}, but the tenancy's home region is {home}: compartments, "
            f"tags and quotas are changed only there. Set `region: {home}` in the class file. Nothing was created."
        )

layer = ClassLayer("class", spec)
pulumi.export("tagNamespace", spec.tag_namespace)
pulumi.export("studentTagKey", defined_tag_key(spec.tag_namespace))
pulumi.export("tagNamespaceId", layer.tag_namespace_id)
pulumi.export("topicId", layer.topic_id)
pulumi.export("studentCompartments", layer.student_compartments)
pulumi.export("budgets", layer.budgets)
pulumi.export("retired", spec.retire)
