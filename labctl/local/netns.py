"""Make a ``Topology`` real: network namespaces, veth links, addresses, routes, nftables; and sockets inside them.

Everything is created under names carrying the run id (``dblab-<id>-<role>`` namespaces, ``dl<id>-<role>[r]``
interfaces). Both ends of every veth pair are created directly inside their namespaces, so nothing appears in the
machine's own namespace, even for a moment. ``teardown`` deletes the namespaces (which deletes their interfaces).

Sockets inside a namespace: ``in_netns`` runs a function on a fresh thread that first joins the namespace with
``setns(2)`` (a network namespace switch applies to the calling thread only); a socket keeps the namespace it was
created in, so listeners made that way keep working from any thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from labctl.local import nft
from labctl.local.topology import INET_LINK_HOST, INET_LINK_ROUTER, Topology

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
T = TypeVar("T")


class NetnsError(RuntimeError):
    """A command that builds the lab failed; the message has the command and its error output."""


def run(argv: Sequence[str], stdin: str | None = None, timeout: float = 30.0) -> str:
    """Run one command; raise ``NetnsError`` with its stderr when it fails."""
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as e:
        raise NetnsError(f"{argv[0]} not found: {e}") from None
    except subprocess.TimeoutExpired:
        raise NetnsError(f"`{' '.join(argv)}` did not finish within {timeout:.0f}s") from None
    if done.returncode != 0:
        raise NetnsError(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def batch(lines: Iterable[str], ns: str | None = None) -> None:
    """Several ``ip`` commands in one process (``ip -batch``), optionally inside ``ns``."""
    text = "\n".join(lines) + "\n"
    argv = ["ip", *(("-n", ns) if ns else ()), "-batch", "-"]
    run(argv, stdin=text)


def load_ruleset(ns: str, ruleset: str) -> None:
    run(["ip", "netns", "exec", ns, "nft", "-f", "-"], stdin=ruleset)


def existing(prefix: str) -> list[str]:
    """Namespaces whose names start with ``prefix`` (from ``/run/netns``, where ``ip netns`` keeps them)."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def build(topo: Topology) -> list[str]:
    """Create every namespace, link, address, route and ruleset of ``topo``; return the namespaces made.

    On failure the namespaces made so far are deleted before the error propagates.
    """
    made: list[str] = []
    try:
        for ns in topo.namespaces:
            run(["ip", "netns", "add", ns])
            made.append(ns)
        rtr, inet = topo.router_ns, topo.internet
        links = [
            f"link add {h.ifname} netns {h.ns} type veth peer name {h.router_ifname} netns {rtr}" for h in topo.hosts
        ]
        links.append(f"link add {inet.ifname} netns {inet.ns} type veth peer name {inet.router_ifname} netns {rtr}")
        batch(links)
        # router: the subnet's virtual router IP on each host link, a /32 route to the host behind it
        r_lines = ["link set lo up"]
        for h in topo.hosts:
            r_lines += [
                f"addr add {h.router_ip}/32 dev {h.router_ifname}",
                f"link set {h.router_ifname} up",
                f"route add {h.address}/32 dev {h.router_ifname} src {h.router_ip}",
            ]
        r_lines += [
            f"addr add {topo_link(True)} dev {inet.router_ifname}",
            f"link set {inet.router_ifname} up",
        ]
        r_lines += [f"route add {a}/32 via {INET_LINK_HOST} dev {inet.router_ifname}" for a in inet.addresses]
        batch(r_lines, rtr)
        run(["ip", "netns", "exec", rtr, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        load_ruleset(rtr, nft.router_ruleset(topo))
        # the internet: its addresses, and every packet to the router (it is "the rest of the world")
        i_lines = ["link set lo up", f"addr add {topo_link(False)} dev {inet.ifname}"]
        i_lines += [f"addr add {a}/32 dev {inet.ifname}" for a in inet.addresses]
        i_lines += [
            f"link set {inet.ifname} up",
            f"route add default via {INET_LINK_ROUTER} dev {inet.ifname} src {inet.student}",
        ]
        batch(i_lines, inet.ns)
        # hosts: the private IP, the router as the only neighbour, the declared routes
        for h in topo.hosts:
            lines = [
                "link set lo up",
                f"addr add {h.address}/32 dev {h.ifname}",
                f"link set {h.ifname} up",
                f"route add {h.router_ip}/32 dev {h.ifname} scope link src {h.address}",
            ]
            for route in h.routes:
                dest = "default" if route.destination == "0.0.0.0/0" else route.destination
                lines.append(f"route replace {dest} via {h.router_ip} dev {h.ifname} src {h.address}")
            batch(lines, h.ns)
            load_ruleset(h.ns, nft.host_ruleset(h, topo.names.table(), topo.nsg_members))
    except BaseException:
        teardown(made)
        raise
    return made


def topo_link(router: bool) -> str:
    """The router's or the internet namespace's address on their link (link-local, a /30)."""
    return f"{INET_LINK_ROUTER if router else INET_LINK_HOST}/30"


def teardown(namespaces: Iterable[str]) -> list[str]:
    """Delete the namespaces (their interfaces go with them); return the ones that could not be deleted."""
    left = []
    for ns in namespaces:
        if not (NETNS_DIR / ns).exists():
            continue
        try:
            run(["ip", "netns", "del", ns], timeout=15)
        except NetnsError:
            left.append(ns)
    return left


# --- sockets inside a namespace ----------------------------------------------------------------------------------

_libc: Any = None


def _setns(ns: str) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(NETNS_DIR / ns, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


def in_netns(ns: str, fn: Callable[[], T], timeout: float = 30.0) -> T:
    """``fn()`` on a fresh thread inside namespace ``ns``; its result, or its exception re-raised here."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            _setns(ns)
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 (re-raised in the caller's thread)
            box["error"] = e

    thread = threading.Thread(target=body, name=f"netns-{ns}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"work inside namespace {ns} did not finish within {timeout:.0f}s")
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclass(frozen=True)
class Probe:
    """One TCP connect from ``source`` (an address in namespace ``ns``) to ``address:port``."""

    ns: str
    source: str
    address: str
    port: int


@dataclass(frozen=True)
class ProbeResult:
    probe: Probe
    connected: bool
    detail: str  # "connected", "timed out", "refused", "network unreachable", ...
    elapsed_s: float


def _connect(probe: Probe, timeout: float) -> ProbeResult:
    start = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.bind((probe.source, 0))
            s.connect((probe.address, probe.port))
            detail, ok = "connected", True
        except TimeoutError:
            detail, ok = "timed out (packets dropped)", False
        except ConnectionRefusedError:
            detail, ok = "refused (nothing listening)", False
        except OSError as e:
            names = {errno.ENETUNREACH: "network unreachable (no route)", errno.EHOSTUNREACH: "host unreachable"}
            detail, ok = names.get(e.errno or 0, str(e)), False
    return ProbeResult(probe, ok, detail, time.monotonic() - start)


def probe_all(probes: Sequence[Probe], timeout: float = 1.5) -> list[ProbeResult]:
    """Every probe at once (one thread each, each inside its source namespace); results in the probes' order."""
    results: list[ProbeResult | None] = [None] * len(probes)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            results[i] = in_netns(probes[i].ns, lambda: _connect(probes[i], timeout), timeout + 5)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(probes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 10)
    if errors:
        raise NetnsError(f"a probe could not run: {errors[0]}")
    return [r for r in results if r is not None]


class Listeners:
    """Plain TCP listeners (accept, then close) inside namespaces, for ports no real server answers on."""

    def __init__(self) -> None:
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def add(self, ns: str, address: str, port: int) -> bool:
        """Listen on ``address:port`` in ``ns``; False when something (a real server) already listens there."""

        def make() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((address, port))
            except OSError:
                s.close()
                raise
            s.listen(64)
            s.settimeout(0.2)
            return s

        try:
            sock = in_netns(ns, make)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
        self._socks.append(sock)
        t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        t.start()
        self._threads.append(t)
        return True

    def _serve(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.close()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for s in self._socks:
            s.close()

    def __enter__(self) -> Listeners:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_port(ns: str, address: str, port: int, timeout: float, alive: Callable[[], bool] | None = None) -> None:
    """Block until ``address:port`` accepts a TCP connection from inside ``ns`` (loopback path, no filter)."""
    deadline = time.monotonic() + timeout

    def attempt() -> bool:
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
            s.settimeout(0.5)
            try:
                s.connect((address, port))
                return True
            except OSError:
                return False

    while time.monotonic() < deadline:
        if in_netns(ns, attempt):
            return
        if alive is not None and not alive():
            raise NetnsError(f"the server for {address}:{port} in {ns} exited before listening")
        time.sleep(0.05)
    raise NetnsError(f"nothing listens on {address}:{port} in {ns} after {timeout:.0f}s")


def tools_missing() -> list[str]:
    return [t for t in ("ip", "nft") if shutil.which(t) is None]
