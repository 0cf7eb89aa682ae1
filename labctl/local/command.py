"""``labctl local up|check|down|rules``: the run, its state file, and its clean-up.

``up`` plans the stack offline (as ``labctl plan`` does, with a per-run SSH key as ``sshPublicKey``), applies a
drill if asked, builds the namespaces, starts sshd and the server that plays the plan's DB engine (its
``local_server``: MariaDB for the MySQL family, PostgreSQL for the PostgreSQL family), runs the EnvFile provider from
the internet namespace, proves every verdict by packets, and leaves the lab running. Any failure, Ctrl-C, SIGTERM or
timeout removes everything the run made before returning. ``check`` repeats the provider step and the verdicts on the
running lab; ``down`` removes it; ``rules`` prints the nftables translation without building anything.

State: ``<state dir>/<stack>.json`` (default ``/run/oci-dblab-local``, or ``$OCI_DBLAB_LOCAL_STATE``) records the
run id, the run directory, the namespaces and the server process ids, and is written before each of them is
created, so ``down`` can always clean up after a run that was killed. One lab per stack at a time; labs of
different stacks (or state dirs) never collide, since every name carries its run id.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import platform
import secrets
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.ocimodel import SUBNET
from labctl import reach
from labctl.cliconfig import load_stack
from labctl.local import drills, netns, nft, servers, topology, verdicts
from labctl.offline import REPO_ROOT, ProgramError, run_program
from labctl.stackfile import StackFileError

STATE_ENV = "OCI_DBLAB_LOCAL_STATE"
DEFAULT_STATE_DIR = Path("/run/oci-dblab-local")
CHECK_TIMEOUT_S = 30
DRILL_CHECK_TIMEOUT_S = 2
SERVER_WAIT_S = 30.0
MARIADB, POSTGRESQL = "mariadb", "postgresql"  # the engines' local_server values (engines/base.py)
INSTALL_HINT = "on Debian/Ubuntu: sudo apt-get install iproute2 nftables openssh-server mariadb-server"


class LocalError(Exception):
    """A failure a user can act on; the message names what and where."""


@dataclass
class Options:
    stack: str = "dev"
    config_file: Path | None = None
    project_dir: Path = REPO_ROOT
    drill: str | None = None
    state_dir: Path | None = None
    check_timeout: int | None = None
    # programmatic only (tests, experiments): one more change to the planned resources before materialising
    mutate: Callable[[list[Any]], None] | None = None
    out: Callable[[str], None] = print


@dataclass
class Lab:
    """What ``check`` needs of a running lab (pickled, 0600, in the run directory)."""

    topo: topology.Topology
    cases: list[verdicts.Case]
    hops: list[str]  # the model's view of the check's hops, for failure messages
    inputs: dict[str, Any]  # the EnvFile provider's inputs (passwords included)
    drill: str | None


@dataclass
class Outcome:
    ok: bool
    check: dict[str, Any] | None = None
    message: str = ""
    rows: list[verdicts.Row] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


# --- state -------------------------------------------------------------------------------------------------------


def state_dir(opts: Options) -> Path:
    return opts.state_dir or Path(os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR)


def _state_path(opts: Options) -> Path:
    if not opts.stack or any(c not in string.ascii_letters + string.digits + "-_." for c in opts.stack):
        raise LocalError(f"--stack {opts.stack!r}: use letters, digits, '-', '_' or '.', e.g. --stack dev")
    return state_dir(opts) / f"{opts.stack}.json"


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        raise LocalError(f"state file {path} is unreadable ({e}); remove it after checking `ip netns list`") from None


def _claim(path: Path, state: dict[str, Any]) -> None:
    """Create the state file, or refuse when a lab of this stack is already up."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        old = _read_state(path) or {}
        raise LocalError(
            f"a local lab of stack '{state['stack']}' is already up (run {old.get('runId', '?')}, state {path}); "
            f"run `labctl local down --stack {state['stack']}` first"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(state, indent=2))


def cleanup(state: dict[str, Any]) -> list[str]:
    """Stop the run's processes, delete its namespaces and its run directory. Returns what could not be removed."""
    left: list[str] = []
    run_dir = state.get("runDir") or ""
    prefix = f"dblab-{state.get('runId', '')}-" if state.get("runId") else None
    for pid in state.get("pids", {}).values():
        # every process of the run names the run id in its command line (run directory, or postgres' data directory)
        if prefix or run_dir:
            servers.kill_recorded(int(pid), prefix or run_dir)
    if state.get("runId"):
        left += servers.PostgreSQL.remove_homes(_pg_home_prefix(str(state["runId"])))
    names = list(state.get("namespaces", []))
    if prefix:
        names += [n for n in netns.existing(prefix) if n not in names]
    left += netns.teardown(names)
    if run_dir and Path(run_dir).name.startswith("dblab-") and Path(run_dir).exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        if Path(run_dir).exists():
            left.append(run_dir)
    return left


# --- preconditions -----------------------------------------------------------------------------------------------


def preconditions() -> None:
    if platform.system() != "Linux":
        raise LocalError(
            f"labctl local needs Linux (network namespaces and nftables); this is {platform.system()}. "
            "Use a Linux VM or WSL2, or `labctl plan` for the offline verdicts"
        )
    if os.geteuid() != 0:
        raise LocalError(
            "labctl local needs root (it creates network namespaces): run it with sudo, e.g. `sudo make lab`"
        )
    missing = netns.tools_missing()
    if not Path(servers.SSHD).exists():
        missing.append("sshd")
    if not (shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists()):
        missing.append("mariadbd")
    if missing:
        raise LocalError(f"missing {', '.join(missing)}; install them ({INSTALL_HINT}, or `bash .ci/services.sh`)")


# --- the run -----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP end the run like Ctrl-C does, so the clean-up in ``finally`` always runs."""

    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)} if main else {}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _plan(opts: Options, public_key: str | None, drill: drills.Drill | None) -> tuple[list[Any], str, str | None]:
    from components.config import offline_secret_value  # placeholders for encrypted values, as `labctl plan`

    try:
        merged = load_stack(opts.stack, opts.project_dir, opts.config_file, placeholder=offline_secret_value)
    except StackFileError as e:
        raise LocalError(str(e)) from None
    config, secret = dict(merged.values), list(merged.secret_keys)
    if public_key:
        config = {**config, "oci-dblab:sshPublicKey": public_key}
    config, student = drills.config_change(drill, config)
    try:
        plan = run_program(config, secret, stack=opts.stack, project_dir=opts.project_dir)
    except ProgramError as e:
        raise LocalError(f"the program failed for stack '{opts.stack}':\n{e}") from None
    resources = drills.apply(drill, plan.resources)
    if opts.mutate is not None:
        opts.mutate(resources)
    return resources, config.get("oci-dblab:adminCidr", ""), student


class _Background:
    """One function on a thread; ``result()`` joins it and re-raises its error."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._box: dict[str, Any] = {}

        def body() -> None:
            try:
                self._box["value"] = fn()
            except BaseException as e:  # noqa: BLE001 (re-raised by result())
                self._box["error"] = e

        self._thread = threading.Thread(target=body, daemon=True)
        self._thread.start()

    def wait(self, timeout: float = 180.0) -> None:
        self._thread.join(timeout)

    def result(self, timeout: float = 180.0) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise servers.ServerError(f"mariadb-install-db did not finish within {timeout:.0f}s")
        if "error" in self._box:
            raise self._box["error"]
        return self._box.get("value")


def _password(n: int = 24) -> str:
    """Per-run passwords meeting the MySQL HeatWave rule (digit, lower, upper, special); never printed."""
    alphabet = string.ascii_letters + string.digits
    core = "".join(secrets.choice(alphabet) for _ in range(n - 4))
    return f"Lb{core}7#"


def _hops(resources: Sequence[Any], topo: topology.Topology, ssh_port: int, db_port: int) -> list[str]:
    """The model's verdict on the check's two network hops, worded for a failure message."""
    net = reach._Network(resources)
    app, db = reach._app_endpoint(net), reach._db_endpoint(net)
    inet = topo.internet
    ssh_model, ssh_why = reach._from_internet(net, verdicts._net(inet.student), app, ssh_port)
    fwd_model, fwd_why = reach._inside_vcn(net, app, db, db_port)
    hint = ""
    if fwd_model == reach.DENIED:
        rules, _ = net.vnic_rules(db)
        egress = [r for r in rules if r.direction == "EGRESS" and r.is_tcp and r.covers_port(db_port)]
        if egress:
            hint = (
                f" ({egress[0].describe()} is an egress rule: egress governs packets leaving the DB; the app's "
                f"connection to port {db_port} needs an ingress rule)"
            )
    public = topo.host("app").public_ip or "(no public IP)"
    return [
        f"SSH hop (your address {inet.student}, adminCidr {topo.admin_cidr} → app VM public IP {public}:{ssh_port}), "
        "by the declared resources: "
        f"{ssh_model}: {ssh_why}",
        f"forward hop (app VM {topo.host('app').address} → DB private IP {topo.host('db').address}:{db_port}), by "
        f"the declared resources: {fwd_model}: {fwd_why}{hint}",
    ]


def local_server(resources: Sequence[Any]) -> str:
    """Which loopback server plays the plan's database: the ``local_server`` of the engine whose endpoint the plan
    declares; MariaDB when the plan declares none."""
    import engines
    from policy.rules import db_endpoints

    # each engine finds its own endpoint (a DB-VM engine's is a core instance, a neutral type: engine_of_type cannot
    # tell it from the app VM)
    for ep in db_endpoints(resources):
        return engines.get(ep.engine).local_server or MARIADB
    return MARIADB


def _pg_home_prefix(run_id: str) -> str:
    # postgres runs as servers.PG_USER from a private directory under the system temp dir (it may not enter the run
    # directory); its name carries the run id, so cleanup() finds it and kill_recorded() recognises the process
    return f"dblab-{run_id}-pg-"


def _app_subnet_cidr(resources: Sequence[Any], topo: topology.Topology) -> str:
    """The app subnet's CIDR (pg_hba.conf lets only it in, as the DB VM's does); the app VM's /32 if not found."""
    app = topo.host("app")
    for r in resources:
        if r.resource_type == SUBNET and r.name == app.subnet:
            cidr = (r.props or {}).get("cidrBlock")
            if isinstance(cidr, str) and cidr:
                return cidr
    return f"{app.address}/32"


def _configured_server(opts: Options) -> str:
    """The local server the stack's dbEngine asks for, read from its config before planning (MariaDB when unsure)."""
    import engines

    try:
        merged = load_stack(opts.stack, opts.project_dir, opts.config_file)
    except Exception:  # noqa: BLE001 - _plan reports a broken stack file with its message
        return MARIADB
    engine = engines.find(merged.values.get("oci-dblab:dbEngine"))
    return (engine.local_server if engine is not None else None) or MARIADB


def _installer(server: str, run_dir: Path, run_id: str) -> servers.MariaDB | servers.PostgreSQL:
    """A launcher for the DB's one-time install only (start() uses a second one on the same folder, which reuses
    what this one made)."""
    if server == POSTGRESQL:
        pg = servers.PostgreSQL(run_dir / "db", None, "", "", home_prefix=_pg_home_prefix(run_id))
        pg.detach()  # its files outlive this object: start()'s launcher (or cleanup) owns them
        return pg
    return servers.MariaDB(run_dir / "db", None, "", "")


def _start_servers(
    run_dir: Path,
    topo: topology.Topology,
    inputs: dict[str, Any],
    pub: str,
    record: Callable[[str, int], None],
    server: str = MARIADB,
    hba_cidrs: Sequence[str] = (),
) -> tuple[servers.MariaDB | servers.PostgreSQL, servers.Sshd]:
    db_host, app_host = topo.host("db"), topo.host("app")
    tls = servers.make_tls_files(run_dir / "tls", [str(inputs["dbHostname"]), "localhost"], [db_host.address])
    inputs["sslCa"] = str(tls.ca_cert)
    # What both servers take: the admin account and where they listen (the DB host's private IP, in its namespace).
    common = {
        "admin_user": str(inputs["adminUser"]),
        "admin_password": str(inputs["adminPassword"]),
        "bind": db_host.address,
        "port": int(inputs["dbPort"]),
        "netns": db_host.ns,
    }
    db: servers.MariaDB | servers.PostgreSQL
    if server == POSTGRESQL:
        db = servers.PostgreSQL(
            run_dir / "db",
            tls,
            **common,
            hba_cidrs=tuple(hba_cidrs) or (f"{app_host.address}/32",),
            home_prefix=_pg_home_prefix(topo.names.run_id),
        ).prepare()
    else:
        db = servers.MariaDB(run_dir / "db", tls, **common).prepare()
    sshd = servers.Sshd(
        run_dir / "sshd", [pub], bind=app_host.address, port=int(inputs["sshPort"]), netns=app_host.ns
    ).prepare()
    db.start(wait=0)
    record("postgres" if server == POSTGRESQL else "mariadbd", db.pid or 0)
    sshd.start()
    record("sshd", sshd.pid or 0)
    netns.wait_port(app_host.ns, app_host.address, sshd.port, SERVER_WAIT_S, alive=lambda: sshd.running)
    db.wait_ready(SERVER_WAIT_S)
    return db, sshd


def _provider_step(lab: Lab, run_dir: Path) -> dict[str, Any]:
    """The EnvFile provider, in the internet namespace; the request file lives only while it runs."""
    request = run_dir / "envfile-request.json"
    request.touch(mode=0o600)
    request.write_text(json.dumps(lab.inputs))
    limit = float(lab.inputs["checkTimeoutSeconds"]) + 60
    try:
        done = subprocess.run(
            ["ip", "netns", "exec", lab.topo.internet.ns, sys.executable, "-m", "labctl.local.envstep", str(request)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "message": f"the provider step did not finish within {limit:.0f}s"}
    finally:
        request.unlink(missing_ok=True)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"ok": False, "message": f"the provider step crashed: {done.stderr.strip()[-1500:]}"}


def _exercise(lab: Lab, run_dir: Path, out: Callable[[str], None]) -> Outcome:
    """The provider step, then every verdict by packets; one outcome."""
    timings: dict[str, float] = {}
    t = time.monotonic()
    result = _provider_step(lab, run_dir)
    timings["check"] = time.monotonic() - t
    t = time.monotonic()
    rows = verdicts.prove(lab.cases)
    timings["verdicts"] = time.monotonic() - t
    out(verdicts.render(rows))
    problems = verdicts.disagreements(rows)
    message = ""
    if result.get("ok"):
        chk = result.get("check") or {}
        out(
            f"Connection check: ok ({chk.get('currentUser')}, {chk.get('serverVersion')}, TLS "
            f"{(chk.get('tls') or {}).get('version')}, {chk.get('latencyMs')} ms) via {result.get('served')}"
        )
        out(f".env here: {result.get('path')}   .env on the 'VM': {result.get('remotePath')}")
    else:
        message = f"connection check failed: {result.get('message')}\n  " + "\n  ".join(lab.hops)
    if problems:
        message += ("\n" if message else "") + "model and packets disagree:\n  " + "\n  ".join(problems)
    return Outcome(not message, result.get("check"), message, rows, timings)


def up(opts: Options) -> Outcome:
    """Build and prove the lab; leave it running when everything passed, remove everything otherwise."""
    preconditions()
    drill = drills.get_drill(opts.drill)
    run_id = secrets.token_hex(3)
    names = topology.Names(run_id)
    path = _state_path(opts)
    state: dict[str, Any] = {
        "stack": opts.stack,
        "runId": run_id,
        "runDir": "",
        "namespaces": [],
        "pids": {},
        "drill": opts.drill,
        "created": time.time(),
    }
    _claim(path, state)
    timings: dict[str, float] = {}
    started = time.monotonic()
    keep = False
    installing: _Background | None = None
    try:
        with _signals_as_interrupt():
            opts.out(
                f"Local lab of stack '{opts.stack}' (run {run_id}"
                + (f", drill {opts.drill}: {drill.what}" if drill else "")
                + ")"
            )
            run_dir = Path(tempfile.mkdtemp(prefix=f"dblab-{run_id}-", dir=_run_parent()))
            state["runDir"] = str(run_dir)
            _write_state(path, state)
            key = run_dir / "keys" / "id_ed25519"
            pub = servers.make_ssh_key(key, f"dblab-local-{run_id}")
            # the DB's install (mariadb-install-db / initdb) needs nothing from the plan: let it run meanwhile
            guess = _configured_server(opts)
            installing = _Background(lambda: _installer(guess, run_dir, run_id).install())
            t = time.monotonic()
            resources, admin_cidr, student = _plan(opts, pub, drill)
            server = local_server(resources)
            if server != guess:  # the plan knows better than the config file
                installing.wait()
                installing = _Background(lambda: _installer(server, run_dir, run_id).install())
            topo = topology.build(resources, admin_cidr, names, opts.stack, student_cidr=student)
            timings["plan"] = time.monotonic() - t
            inputs = topology.envfile_inputs(resources)
            authorized = topology.authorized_keys(resources)
            timeout = opts.check_timeout or (DRILL_CHECK_TIMEOUT_S if drill else CHECK_TIMEOUT_S)
            remote = run_dir / "vm" / "home" / "opc" / "app"
            inputs.update(
                {
                    "sshUser": _login_user(),
                    "remoteDir": str(remote),
                    "localPath": str(run_dir / "project" / ".env"),
                    "sshPrivateKeyPath": str(key),
                    "adminPassword": _password(),
                    "appPassword": _password(),
                    "checkTimeoutSeconds": timeout,
                }
            )
            t = time.monotonic()
            state["namespaces"] = list(topo.namespaces)
            _write_state(path, state)
            netns.build(topo)
            timings["namespaces"] = time.monotonic() - t
            t = time.monotonic()

            def record(name: str, pid: int) -> None:
                state["pids"][name] = pid
                _write_state(path, state)

            installing.result()
            started_servers = _start_servers(
                run_dir, topo, inputs, authorized, record, server, hba_cidrs=(_app_subnet_cidr(resources, topo),)
            )
            timings["servers"] = time.monotonic() - t
            cases = verdicts.cases(resources, admin_cidr, topo)
            hops = _hops(resources, topo, int(inputs["sshPort"]), int(inputs["dbPort"]))
            lab = Lab(topo, cases, hops, inputs, opts.drill)
            lab_file = run_dir / "lab.pickle"
            lab_file.touch(mode=0o600)
            lab_file.write_bytes(pickle.dumps(lab))
            for note in (*topo.notes, *(n for h in topo.hosts for n in h.notes)):
                opts.out(f"note: {note}")
            opts.out(f"namespaces: {', '.join(topo.namespaces)}")
            outcome = _exercise(lab, run_dir, opts.out)
            timings.update(outcome.timings)
            timings["up"] = time.monotonic() - started
            outcome.timings = timings
            keep = outcome.ok
            if outcome.ok:
                for server in started_servers:
                    server.detach()
                opts.out(
                    f"LAB UP in {timings['up']:.1f}s. `labctl local check --stack {opts.stack}` re-runs the check; "
                    f"`labctl local down --stack {opts.stack}` removes it."
                )
            return outcome
    except KeyboardInterrupt:
        raise LocalError("interrupted; everything this run made was removed") from None
    finally:
        if not keep:
            if installing is not None:  # never remove the run folder while mariadb-install-db still writes into it
                installing.wait()
            left = cleanup(state)
            path.unlink(missing_ok=True)
            if left:
                opts.out(f"warning: could not remove {', '.join(left)}")


def _run_parent() -> str | None:
    """Where run directories go: ``/dev/shm`` (RAM) when it is there, so MariaDB's files never wait for a disk."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _login_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def _load(opts: Options) -> tuple[dict[str, Any], Lab, Path]:
    path = _state_path(opts)
    state = _read_state(path)
    if state is None:
        raise LocalError(
            f"no local lab of stack '{opts.stack}' is up; start one with `labctl local up --stack {opts.stack}`"
        )
    run_dir = Path(state.get("runDir", ""))
    try:
        lab = pickle.loads((run_dir / "lab.pickle").read_bytes())
    except OSError:
        raise LocalError(
            f"the local lab of stack '{opts.stack}' is incomplete (no {run_dir / 'lab.pickle'}); "
            f"run `labctl local down --stack {opts.stack}`"
        ) from None
    return state, lab, run_dir


def check(opts: Options) -> Outcome:
    preconditions()
    state, lab, run_dir = _load(opts)
    missing = [ns for ns in lab.topo.namespaces if ns not in netns.existing(lab.topo.names.prefix)]
    dead = [name for name, pid in state.get("pids", {}).items() if not servers.alive(int(pid))]
    if missing or dead:
        raise LocalError(
            f"the local lab of stack '{opts.stack}' is damaged (missing {', '.join(missing + dead)}); "
            f"run `labctl local down --stack {opts.stack}` and `up` again"
        )
    return _exercise(lab, run_dir, opts.out)


def down(opts: Options) -> bool:
    """Remove the stack's lab; True when there was one."""
    preconditions()
    path = _state_path(opts)
    state = _read_state(path)
    if state is None:
        return False
    left = cleanup(state)
    if left:
        raise LocalError(f"could not remove {', '.join(left)}; the state stays in {path}")
    path.unlink(missing_ok=True)
    return True


def rules(opts: Options) -> str:
    """The nftables translation of the stack's declared rules (nothing is built; no root needed)."""
    drill = drills.get_drill(opts.drill)
    resources, admin_cidr, student = _plan(opts, None, drill)
    topo = topology.build(resources, admin_cidr, topology.Names("000000"), opts.stack, student_cidr=student)
    return nft.render(topo)


# --- the command -------------------------------------------------------------------------------------------------

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def run_cli(args: Any) -> int:
    """``labctl local VERB`` (``cli.py`` dispatches here); one map from errors to exit codes."""
    opts = Options(
        stack=args.stack,
        config_file=getattr(args, "config", None),
        project_dir=Path(getattr(args, "project_dir", REPO_ROOT)),
        drill=getattr(args, "break_", None),
        check_timeout=getattr(args, "check_timeout", None),
    )
    try:
        if args.verb == "rules":
            print(rules(opts))
            return EXIT_OK
        if args.verb == "down":
            removed = down(opts)
            print(f"local lab of stack '{opts.stack}' {'removed' if removed else 'is not up: nothing to remove'}")
            return EXIT_OK
        outcome = up(opts) if args.verb == "up" else check(opts)
    except drills.DrillError as e:
        print(f"labctl local: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (LocalError, topology.TopologyError, netns.NetnsError, servers.ServerError) as e:
        print(f"labctl local {args.verb}: {e}", file=sys.stderr)
        return EXIT_FAILED
    if not outcome.ok:
        print(f"LAB FAILED: {outcome.message}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
