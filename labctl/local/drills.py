"""``--break FAULT``: the mistakes students make, applied to the declared resources before the lab is built.

Each drill changes a copy of the planned resources (or the stack config, for ``admin-cidr``), never the program.
The connection check must then fail, and its message must name the hop and the lab concept; ``expect`` lists the
words the tests look for.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from components.ocimodel import SECURITY_LIST, get, items, network, value
from labctl import reach
from labctl.local.topology import DRILL_ADMIN_CIDR


class DrillError(ValueError):
    pass


@dataclass(frozen=True)
class Drill:
    name: str
    what: str  # what the drill breaks, for students
    concept: str  # the lab concept it teaches
    expect: tuple[str, ...]  # words the check's failure must contain


DRILLS: dict[str, Drill] = {
    d.name: d
    for d in (
        Drill(
            "db-ingress",
            "the private subnet's security list loses its ingress rules for the database ports",
            "security list: the DB port must be open to the app subnet",
            ("forward hop", "security list", "DB private IP"),
        ),
        Drill(
            "ssh-ingress",
            "the public subnet's security list loses its SSH (22) ingress rule",
            "security list: SSH only from adminCidr",
            ("SSH hop", "security list", "22"),
        ),
        Drill(
            "public-route",
            "the public route table loses its 0.0.0.0/0 rule to the internet gateway",
            "route table: replies to the internet need a route to the internet gateway",
            ("SSH hop", "route table"),
        ),
        Drill(
            "db-egress-only",
            "the database-port rules of the private security list are written as egress instead of ingress",
            "security list direction: ingress is what reaches the DB, egress is what leaves it",
            ("forward hop", "ingress", "security list"),
        ),
        Drill(
            "admin-cidr",
            f"adminCidr no longer matches the student's address (set to {DRILL_ADMIN_CIDR})",
            "adminCidr: your current public IP as /32",
            ("SSH hop", "adminCidr"),
        ),
    )
}


def get_drill(name: str | None) -> Drill | None:
    if name is None:
        return None
    if name not in DRILLS:
        raise DrillError(
            f"--break {name!r} is not a drill; choose one of {', '.join(DRILLS)} (example: --break db-ingress)"
        )
    return DRILLS[name]


def config_change(drill: Drill | None, config: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """The stack config to plan with, and the student's real adminCidr when the drill changes the declared one."""
    if drill is None or drill.name != "admin-cidr":
        return config, None
    changed = dict(config)
    real = config.get("oci-dblab:adminCidr", "")
    changed["oci-dblab:adminCidr"] = DRILL_ADMIN_CIDR
    return changed, real


def _lists_of(net: reach._Network, ep: reach._Endpoint) -> list[Any]:
    assert ep.subnet is not None
    found = []
    for sl_id in items(value(ep.subnet, "securityListIds")):
        sl = net.ids.get(sl_id)
        if sl is not None and sl.resource_type == SECURITY_LIST:
            found.append(sl)
    if not found:
        raise DrillError(f"{ep.subnet.name} has no declared security list to break")
    return found


def _covers(rule: Any, port: int) -> bool:
    tcp = get(rule, "tcpOptions")
    if str(get(rule, "protocol")) not in ("6", "all"):
        return False
    if tcp is None:
        return True
    return int(get(tcp, "min", 1)) <= port <= int(get(tcp, "max", 65535))


def _drop_ingress(net: reach._Network, ep: reach._Endpoint, ports: Sequence[int]) -> list[dict[str, Any]]:
    removed = []
    for sl in _lists_of(net, ep):
        rules = items(value(sl, "ingressSecurityRules"))
        keep = [r for r in rules if not any(_covers(r, p) for p in ports)]
        removed += [r for r in rules if r not in keep]
        sl.props["ingressSecurityRules"] = keep
    if not removed:
        raise DrillError(f"no ingress rule of {ep.label}'s security lists covers {ports}; nothing to break")
    return removed


def apply(drill: Drill | None, resources: Sequence[Any]) -> list[Any]:
    """A deep copy of ``resources`` with ``drill`` applied."""
    out = copy.deepcopy(list(resources))
    if drill is None or drill.name == "admin-cidr":
        return out
    net = reach._Network(out)
    app, db = reach._app_endpoint(net), reach._db_endpoint(net)
    ports = reach._db_ports(out)
    actions: dict[str, Callable[[], None]] = {
        "db-ingress": lambda: _drop_ingress(net, db, ports) and None,
        "ssh-ingress": lambda: _drop_ingress(net, app, (reach.SSH_PORT,)) and None,
        "db-egress-only": lambda: _to_egress(net, db, ports),
        "public-route": lambda: _drop_default_route(net, app),
    }
    actions[drill.name]()
    return out


def _to_egress(net: reach._Network, db: reach._Endpoint, ports: Sequence[int]) -> None:
    removed = _drop_ingress(net, db, ports)
    sl = _lists_of(net, db)[0]
    egress = list(items(value(sl, "egressSecurityRules")))
    for r in removed:
        moved = {k: v for k, v in dict(r).items() if k not in ("source", "sourceType")}
        moved.update({"destination": r.get("source"), "destinationType": r.get("sourceType", "CIDR_BLOCK")})
        egress.append(moved)
    sl.props["egressSecurityRules"] = egress


def _drop_default_route(net: reach._Network, app: reach._Endpoint) -> None:
    assert app.subnet is not None
    rt, why = net.route_table(app.subnet)
    if rt is None:
        raise DrillError(f"public-route: {why}")
    rules = items(value(rt, "routeRules"))
    keep = [r for r in rules if str(network(get(r, "destination") or get(r, "cidrBlock"))) != reach.ANYWHERE]
    if len(keep) == len(rules):
        raise DrillError(f"route table {rt.name} has no 0.0.0.0/0 rule; nothing to break")
    rt.props["routeRules"] = keep
