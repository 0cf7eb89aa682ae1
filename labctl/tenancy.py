"""``labctl class setup|teardown``: the class layer, one small Pulumi program (``tenancy/``) per class.

The class file's ``classLayer`` section (with the roster's student ids) is checked before anything starts
(``components.tenancy.parse_layer``: file, line, key and an example for each problem, exit 2). Then the program runs
through a ``StackRunner`` (labctl/runners.py): ``--offline`` plans it under the same OCI mocks as the student program
(``LayerOfflineRunner``), otherwise the Pulumi CLI deploys it (``AutomationRunner``, the same thin runner as the
students' stacks, its arguments built by ``automation_args``).

``setup`` is one ``up``. ``teardown`` is an ``up`` that retires the tag and its namespace and turns cost tracking off,
then a ``destroy`` (which forgets the retained tag definitions instead of deleting them; components/tenancy.py says
why). The out-dir (default ``class-run/``, shared with ``labctl class up``) is locked while a run lasts; its state
file ``class-layer.json`` (written atomically after each step) and report ``class-layer-report.md`` name the runner
that made them. ``labctl class up`` reads a successful setup of the same runner from there: each student's stack
then gets ``studentTagNamespace`` (the cost-tracking defined tag) and, with student compartments, its compartment.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from components.portable import Interrupts, LockHeld, atomic_write_text, exclusive_lock
from components.tenancy import LayerError, LayerSpec, parse_layer
from labctl.offline import REPO_ROOT, Plan, ProgramError, run_program
from labctl.runners import StackJob, StackResult, StackRunner

LAYER_DIR = REPO_ROOT / "tenancy"
PROJECT = "oci-dblab-class"
CONFIG_KEY = f"{PROJECT}:layer"
STATE_FILE = "class-layer.json"
REPORT_FILE = "class-layer-report.md"
LOCK_FILE = ".class-layer.lock"
STATE_VERSION = 1
RUNNER_TITLES = {"offline": "offline runner: OCI mocked, nothing created", "cloud": "cloud runner: Pulumi + OCI"}
EXAMPLE_SECTION = (
    "classLayer:\n  name: dblab-2026s1\n  tenancyId: ocid1.tenancy.oc1..aaaaaaaa…\n"
    "  instructorEmail: prof@uni.example.edu\n  monthlyBudgetUsd: 10"
)


class LayerStateError(ValueError):
    """The class layer's state file cannot be used; the message says how to recover."""


# --- the class file's section ---------------------------------------------------------------------------------
def section_lines(text: str) -> dict[str, int]:
    """Line of ``classLayer`` (key ``""``) and of each key under it, from the YAML node tree."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}
    if isinstance(root, yaml.MappingNode):
        for k, v in root.value:
            if isinstance(k, yaml.ScalarNode) and k.value == "classLayer":
                lines[""] = k.start_mark.line + 1
                if isinstance(v, yaml.MappingNode):
                    for kk, _ in v.value:
                        if isinstance(kk, yaml.ScalarNode):
                            lines[kk.value] = kk.start_mark.line + 1
    return lines


def layer_from_text(text: str, student_ids: list[str], source: str, tenancies: str = "shared") -> LayerSpec:
    """The ``classLayer`` section of class.yaml text (already checked by ``roster.parse_class_config``)."""
    from labctl.inputs import InputFileError, load_yaml

    try:
        data = load_yaml(text, source) or {}
    except InputFileError as e:
        raise LayerError([str(e)]) from None
    lines = section_lines(text)
    if not isinstance(data, dict) or "classLayer" not in data:
        raise LayerError([f"{source}: has no classLayer section; add one, e.g.\n{EXAMPLE_SECTION}"])
    if tenancies == "per-student":
        raise LayerError(
            [
                f"{source}:{lines.get('', 0)}: classLayer: the class layer lives in one tenancy, but tenancies: "
                "per-student gives every student their own; set budgets in each student's account instead"
            ]
        )
    return parse_layer(data["classLayer"], student_ids, source, lines)


def load_layer(roster_path: str, class_config: str) -> tuple[LayerSpec, Any, list[Any]]:
    """Roster, class config and the class layer, every problem raised before anything starts."""
    from labctl.roster import load_class_config, load_roster

    roster = load_roster(roster_path)
    cls = load_class_config(class_config)
    spec = judge_section(class_config, roster.students, cls, required=True)
    assert spec is not None  # required=True: a missing section raises
    return spec, cls, roster.students


def judge_section(class_config: str | Path, students: list[Any], cls: Any, required: bool = False) -> LayerSpec | None:
    """The class file's ``classLayer`` section judged as ``class setup`` judges it (``layer_from_text``, then the
    quota's fit with the class's app VM): raises ``LayerError`` (file:line, key, example) or ``InputFileError``.
    ``class up``, ``validate`` and ``preflight`` call it with ``required=False``: a file without the section (or of
    per-student tenancies, which have no class layer) gives None."""
    from labctl.inputs import read_input_file

    text = read_input_file(Path(class_config), "class config", "")
    if not required and (cls.tenancies == "per-student" or "" not in section_lines(text)):
        return None
    spec = layer_from_text(text, [s.student_id for s in students], str(class_config), cls.tenancies)
    problems = quota_fit_problems(spec, cls.app_shape, cls.config.get("appOcpus"))
    if problems:
        lines = section_lines(text)
        where = f"{class_config}:{lines.get('allowedShapes') or lines.get('', 0)}: classLayer."
        raise LayerError([where + p for p in problems])
    return spec


def quota_fit_problems(spec: LayerSpec, app_shape: str | None, app_ocpus: str | None) -> list[str]:
    """Why the class's own students' VMs would be refused by the quota the class layer sets (nothing when there is
    none): the app shape (class.yaml appShape, else the program's default) not allowed, or more OCPUs than allowed."""
    if not spec.allowed_shapes:
        return []
    from components.config import DEFAULTS

    shape = app_shape or DEFAULTS["appShape"] or ""
    if shape not in spec.allowed_shapes:
        return [
            f"allowedShapes: the class's appShape {shape} is not in it, so the quota would refuse every student's "
            f"VM; add it. Example: allowedShapes: [{shape}]"
        ]
    try:
        ocpus = float(app_ocpus) if app_ocpus else 1.0
    except ValueError:
        return []  # roster.parse_class_config / parse_config report a bad appOcpus
    if shape.endswith(".Flex") and ocpus > spec.ocpus_per_student:
        return [
            f"ocpusPerStudent: {spec.ocpus_per_student} is below the class's appOcpus {app_ocpus}, so the quota would "
            f"refuse every student's VM. Example: ocpusPerStudent: {int(-(-ocpus // 1))}"
        ]
    return []


def layer_job(spec: LayerSpec, region: str | None = None, oci_profile: str | None = None) -> StackJob:
    """The class layer as one stack job: stack ``class-<name>``, config ``layer`` (JSON) and ``oci:region``."""
    config = {CONFIG_KEY: spec.to_json()}
    if region:
        config["oci:region"] = region
    return StackJob("class", f"class-{spec.name}", config, (), LAYER_DIR, oci_profile=oci_profile)


def spec_hash(spec: LayerSpec) -> str:
    return hashlib.sha256(spec.to_json().encode()).hexdigest()[:16]


# --- runners --------------------------------------------------------------------------------------------------
@dataclass
class LayerOfflineRunner:
    """Plans the class layer under the OCI mocks (labctl/offline.py), in this process; keeps the last plan."""

    kind: str = "offline"
    plans: list[Plan] = field(default_factory=list)

    def run(self, job: StackJob, action: str, log: Path, attempt: int) -> StackResult:
        start = time.perf_counter()
        try:
            plan = run_program(job.config, stack=job.stack, project_dir=job.project_dir)
        except ProgramError as e:
            with log.open("a") as out:
                out.write(f"== {action} {job.stack} (offline): failed\n{e}\n")
            return StackResult(job.student_id, job.stack, action, "failed", time.perf_counter() - start, error=str(e))
        self.plans.append(plan)
        seconds = time.perf_counter() - start
        with log.open("a") as out:
            out.write(f"== {action} {job.stack} (offline) attempt {attempt}: {seconds:.2f}s\n")
            out.writelines(f"warning: {w}\n" for w in plan.warnings)
        outputs = {} if action == "destroy" else plan.outputs
        return StackResult(
            job.student_id, job.stack, action, "succeeded", seconds, outputs=outputs, resources=len(plan.resources)
        )

    def interrupt(self, signal_name: str) -> None:
        """An offline plan takes a second: it is left to finish."""

    def abort(self) -> None:
        """Nothing to end: the plan runs in this process."""


# --- a run ----------------------------------------------------------------------------------------------------
@dataclass
class LayerRun:
    action: str  # setup | teardown
    runner: str
    steps: list[StackResult] = field(default_factory=list)
    interrupted: str | None = None

    @property
    def ok(self) -> bool:
        return self.interrupted is None and bool(self.steps) and all(s.status == "succeeded" for s in self.steps)


def steps_for(action: str, spec: LayerSpec) -> list[tuple[str, LayerSpec]]:
    """``setup``: up. ``teardown``: up with the tag retired (cost tracking off), then destroy."""
    if action == "setup":
        return [("up", spec)]
    retired = replace(spec, retire=True)
    return [("up", retired), ("destroy", retired)]


def load_state(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / STATE_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise LayerStateError(
            f"{path} cannot be read ({e}); move it away (mv {path} {path}.bad) and run `labctl class setup` again"
        ) from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != STATE_VERSION:
        raise LayerStateError(f"{path} is not a class layer state of version {STATE_VERSION}; move it away")
    return doc


def save_state(out_dir: Path, run: LayerRun, spec: LayerSpec, stack: str) -> None:
    last = run.steps[-1] if run.steps else None
    doc = {
        "schemaVersion": STATE_VERSION,
        "action": run.action,
        "runner": run.runner,
        "stack": stack,
        "name": spec.name,
        "layerHash": spec_hash(spec),
        "status": "succeeded" if run.ok else ("interrupted" if run.interrupted else "failed"),
        "steps": [{"action": s.action, "status": s.status, "seconds": round(s.seconds, 2)} for s in run.steps],
        "outputs": last.outputs if last and last.status == "succeeded" and run.action == "setup" else {},
        "error": next((s.error.splitlines()[0][:300] for s in run.steps if s.error), ""),
        "at": time.time(),
    }
    if run.interrupted:
        doc["interrupted"] = run.interrupted
    atomic_write_text(out_dir / STATE_FILE, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def run_layer(action: str, spec: LayerSpec, job_of: Any, runner: StackRunner, out_dir: Path) -> LayerRun:
    """Run ``action`` with the out-dir locked and Ctrl-C survivable: the first signal lets the running step finish
    and starts no other (teardown's destroy), the second aborts the runner. State is written after each step."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "logs").mkdir(exist_ok=True)
    log = out_dir / "logs" / "class-layer.log"
    run = LayerRun(action, runner.kind)

    def first(name: str) -> None:
        run.interrupted = name
        runner.interrupt(name)
        print(f"{name}: the running step finishes, no further step starts (again to end it now)", file=sys.stderr)

    def second(name: str) -> None:
        runner.abort()
        raise KeyboardInterrupt(f"{name} received twice")

    with exclusive_lock(out_dir / LOCK_FILE, what=f"class layer in {out_dir}"):
        load_state(out_dir)  # an unusable state file stops the run before anything starts
        with Interrupts(on_first=first, on_second=second):
            for pulumi_action, step_spec in steps_for(action, spec):
                if run.interrupted:
                    break
                job = job_of(step_spec)
                result = runner.run(job, pulumi_action, log, 1)
                run.steps.append(result)
                save_state(out_dir, run, spec, job.stack)
                if result.status != "succeeded":
                    break
    return run


# --- what student stacks take from it --------------------------------------------------------------------------
def student_overrides(out_dir: Path, runner_kind: str | None) -> dict[str, dict[str, str]]:
    """Config each student's stack takes from a successful ``setup`` in ``out_dir`` (of ``runner_kind``, when given:
    an offline plan's mock compartments never stand in for real ones): ``studentTagNamespace`` and, with student
    compartments, ``compartmentId``."""
    doc = load_state(out_dir)
    if not doc or doc.get("action") != "setup" or doc.get("status") != "succeeded":
        return {}
    if runner_kind is not None and doc.get("runner") != runner_kind:
        return {}
    outputs = doc.get("outputs") or {}
    ns = outputs.get("tagNamespace")
    if not isinstance(ns, str) or outputs.get("retired"):
        return {}
    overrides: dict[str, dict[str, str]] = {"*": {"oci-dblab:studentTagNamespace": ns}}
    for sid, comp in (outputs.get("studentCompartments") or {}).items():
        overrides[str(sid)] = {"oci-dblab:compartmentId": str(comp)}
    return overrides


def apply_overrides(config: dict[str, str], student_id: str, overrides: dict[str, dict[str, str]]) -> list[str]:
    """``config`` (a student's full stack config) with the class layer's values; the notes to print."""
    notes: list[str] = []
    config.update(overrides.get("*", {}))
    for key, value in overrides.get(student_id, {}).items():
        if key in config and config[key] != value:
            notes.append(f"student {student_id}: {key} of the roster/class file replaced by the class layer's")
        config[key] = value
    return notes


def nothing_to_tear_down(out_dir: Path, runner_kind: str) -> str | None:
    """Why a ``teardown`` of ``runner_kind`` has nothing to tear down in ``out_dir`` (None when it has something):
    no ``setup`` recorded in its state file, one of another runner (a dry run must not overwrite a real layer's
    record), or a teardown that already succeeded."""
    path = out_dir / STATE_FILE
    doc = load_state(out_dir)
    flag = " --offline" if runner_kind == "offline" else ""
    setup = f"python -m labctl class setup ROSTER --class-config CLASS{flag}"
    if doc is None:
        return f"nothing to tear down: no class layer state {path} (no `{setup} --out-dir {out_dir}` ran there)"
    if doc.get("runner") != runner_kind:
        return (
            f"nothing to tear down for the {runner_kind} runner: {path} records a {doc.get('runner')} "
            f"{doc.get('action')}, which this run would overwrite"
        )
    if doc.get("action") == "teardown" and doc.get("status") == "succeeded":
        return f"nothing to tear down: {path} records that class layer {doc.get('name')} was already torn down"
    return None


def stacks_still_up(out_dir: Path, runner_kind: str) -> list[str]:
    """Student stacks whose last run in ``out_dir`` (class-state.json) was a successful ``up`` of ``runner_kind``:
    their resources still sit in the student compartments, which OCI cannot delete while they hold resources."""
    from labctl.classrun import load_state as load_class_state

    stacks = load_class_state(out_dir)
    return sorted(
        name
        for name, rec in stacks.items()
        if rec.get("action") == "up" and rec.get("status") == "succeeded" and rec.get("runner") == runner_kind
    )


# --- report -------------------------------------------------------------------------------------------------------
def summary(plan: Plan, spec: LayerSpec) -> list[str]:
    """What the plan declares, for people: counts, the tag, topic, compartments, quotas, budgets and rules."""
    types = Counter(r.resource_type.rsplit(":", 1)[-1] for r in plan.resources if r.custom)
    lines = [f"{sum(types.values())} resources: " + ", ".join(f"{n} {t}" for t, n in sorted(types.items()))]
    lines.append(
        f"tag namespace {spec.tag_namespace}, cost-tracking tag {spec.tag_namespace}.student"
        + (" (retired, cost tracking off; kept, not deleted)" if spec.retire else "")
    )
    email = f", e-mail {spec.instructor_email} (PENDING until confirmed)" if spec.instructor_email else ", no e-mail"
    lines.append(f"instructor topic {spec.name}-instructor{email}")
    if spec.student_compartments:
        lines.append(f"compartment {spec.class_compartment} with {len(spec.students)} student compartments")
    quotas = [r for r in plan.resources if r.resource_type == "oci:Limits/quota:Quota"]
    if quotas:
        lines.append(f"{len(quotas)} quotas, e.g. {quotas[0].props.get('name')}:")
        lines += [f"    {s}" for s in quotas[0].props.get("statements", [])]
    budgets = [r for r in plan.resources if r.resource_type == "oci:Budget/budget:Budget"]
    rules = [r for r in plan.resources if r.resource_type == "oci:Budget/rule:Rule"]
    if budgets:
        kinds = sorted({f"{r.props.get('type')} {r.props.get('threshold')}%" for r in rules})
        lines.append(
            f"{len(budgets)} budgets of {spec.monthly_budget_usd}/month ({budgets[0].props.get('targetType')} "
            f"targets), {len(rules)} alert rules ({', '.join(kinds)}) to {spec.instructor_email or 'nobody'}"
        )
    else:
        lines.append("no budgets (classLayer.monthlyBudgetUsd is not set)")
    return lines


def _error(step: StackResult) -> str:
    return f" - {step.error.splitlines()[0][:200]}" if step.error else ""


def write_report(out_dir: Path, run: LayerRun, spec: LayerSpec, details: list[str]) -> Path:
    title = f"Class layer {spec.name}: `{run.action}` ({RUNNER_TITLES.get(run.runner, run.runner)})"
    if run.interrupted:
        title += f", INTERRUPTED by {run.interrupted}"
    md = [f"# {title}", ""]
    md += [f"- {s.action}: **{s.status}** in {s.seconds:.1f}s" + _error(s) for s in run.steps]
    md += ["", "```", *details, "```", ""]
    return atomic_write_text(out_dir / REPORT_FILE, "\n".join(md))


# --- the command ----------------------------------------------------------------------------------------------------
def run_cli(args: argparse.Namespace) -> int:
    from labctl.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE  # the one map of exit codes
    from labctl.inputs import InputFileError
    from labctl.roster import ClassConfigError, RosterError

    action = args.verb  # setup | teardown
    try:
        spec, cls, _students = load_layer(args.roster, args.class_config)
    except (RosterError, ClassConfigError, LayerError, InputFileError) as e:
        print(f"labctl class {action}: {e}", file=sys.stderr)
        return EXIT_USAGE
    for w in spec.warnings:
        print(f"warning: {w}", file=sys.stderr)
    runner: Any
    if args.offline:
        runner = LayerOfflineRunner()
    else:
        from labctl.runners import AutomationRunner, check_cloud_tools

        problems, version = check_cloud_tools([])
        if problems:
            print(
                f"labctl class {action}: the cloud runner cannot start; nothing was created:\n"
                + "\n".join(f"  - {p}" for p in problems),
                file=sys.stderr,
            )
            return EXIT_USAGE
        print(f"cloud runner: Pulumi CLI {version}", file=sys.stderr)
        runner = AutomationRunner()
    out_dir = Path(args.out_dir)
    if action == "teardown" and not getattr(args, "force", False):
        from labctl.classrun import ClassStateError

        try:
            up = stacks_still_up(out_dir, runner.kind)
        except ClassStateError as e:
            print(f"labctl class teardown: {e}", file=sys.stderr)
            return EXIT_USAGE
        if up:
            print(
                f"labctl class teardown: {len(up)} student stack(s) are still up ({', '.join(up[:5])}"
                f"{', …' if len(up) > 5 else ''}; {out_dir}/class-state.json); nothing was changed. Destroy them "
                f"first (python -m labctl class destroy {args.roster} --class-config {args.class_config}"
                f"{' --offline' if args.offline else ''}), or --force",
                file=sys.stderr,
            )
            return EXIT_USAGE
    if action == "teardown" and args.offline:
        try:
            nothing = nothing_to_tear_down(out_dir, runner.kind)
        except LayerStateError as e:
            print(f"labctl class teardown: {e}; nothing was started", file=sys.stderr)
            return EXIT_USAGE
        if nothing:  # bad input, as a teardown blocked by student stacks: the CLI's EXIT_USAGE, nothing changed
            print(f"labctl class teardown: {nothing}; nothing was changed", file=sys.stderr)
            return EXIT_USAGE
    try:
        run = run_layer(action, spec, lambda s: layer_job(s, cls.region), runner, out_dir)
    except (LockHeld, LayerStateError) as e:
        print(f"labctl class {action}: {e}; nothing was started", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"labctl class {action}: interrupted twice; see {out_dir / STATE_FILE}", file=sys.stderr)
        return EXIT_INTERRUPTED
    shown = replace(spec, retire=action == "teardown")
    details = summary(runner.plans[-1], shown) if isinstance(runner, LayerOfflineRunner) and runner.plans else []
    report = write_report(out_dir, run, shown, details)
    print(f"class layer {spec.name}: {action} ({RUNNER_TITLES.get(run.runner, run.runner)})")
    for line in details:
        print(f"  {line}")
    for s in run.steps:
        print(f"  {s.action}: {s.status} in {s.seconds:.1f}s" + _error(s))
    print(f"state: {out_dir / STATE_FILE}; report: {report}")
    if run.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if run.ok else EXIT_FAILED
