"""The EnvFile step of the local lab: the real provider does what it does on OCI, from "the internet".

Run as ``ip netns exec <inet namespace> python -m labctl.local.envstep REQUEST.json``: the process (and the provider
host it starts) lives in the internet namespace, so the SSH hop leaves from the admin address, crosses the internet
gateway to the VM's public IP, and the forward hop leaves the VM for the DB's private IP, all through the lab's
routes and filters.

The provider is served as the engine serves it: ``labctl.providerhost.ProviderHost`` starts the SDK's own dynamic
provider host (``python -m pulumi.dynamic``) and speaks gRPC to it (Configure, Check, Create), with values encoded
the way the engine encodes them (numbers as doubles; plain values, since the host answers Configure with
``acceptSecrets: false``).

The request file (0600, in the run directory) holds the provider inputs, passwords included; the result printed on
stdout (JSON) never does: ``{"ok": true, "check": {...}, "path": ..., "remotePath": ..., "served": ...}`` or
``{"ok": false, "message": ...}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from labctl.offline import REPO_ROOT


def engine_encoded(inputs: dict[str, Any]) -> dict[str, Any]:
    """Inputs as the engine hands them to a dynamic provider: every number a double (protobuf ``number_value``)."""
    return {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in inputs.items()}


def _via_provider_host(inputs: dict[str, Any]) -> dict[str, Any]:
    from components.envfile import EnvFileProvider
    from labctl.providerhost import ProviderHost

    with ProviderHost(EnvFileProvider(), cwd=REPO_ROOT) as host:
        checked = host.check({}, inputs)
        if checked.failures:
            reasons = "; ".join(f"{prop}: {reason}" for prop, reason in checked.failures)
            return {"ok": False, "message": f"EnvFile inputs refused by check: {reasons}"}
        _id, outs = host.create(checked.inputs)
        return {"ok": True, "served": "the SDK's provider host (python -m pulumi.dynamic, gRPC)", **_outputs(outs)}


def _outputs(outs: Any) -> dict[str, Any]:
    outs = dict(outs or {})
    return {"check": outs.get("check"), "path": outs.get("path"), "remotePath": outs.get("remotePath")}


def run(request: Path) -> dict[str, Any]:
    inputs = engine_encoded(json.loads(request.read_text()))
    try:
        return _via_provider_host(inputs)
    except Exception as e:  # noqa: BLE001 (the provider's and the host's errors are secret-free by design)
        return {"ok": False, "message": str(e)}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m labctl.local.envstep REQUEST.json", file=sys.stderr)
        return 2
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    result = run(Path(argv[0]))
    print(json.dumps(result))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
