"""The class layer (issue 13 item 2): the class file's section, the tenancy program under the OCI mocks, and
``labctl class setup|teardown`` (offline runner, state, lock, interrupts, what student stacks take from it)."""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

import pytest
from conftest import COMPARTMENT, make_ssh_public_key

from components.portable import exclusive_lock
from components.tenancy import LayerError, LayerSpec, parse_layer, parse_statement, quota_statements, spec_from_json
from labctl import tenancy
from labctl.cli import _class_jobs, main
from labctl.offline import MockCloud, Plan, ProgramError, run_program
from labctl.roster import load_class_config, load_roster
from labctl.runners import StackJob, StackResult, automation_args

TENANCY = "ocid1.tenancy.oc1..aaaaaaaa7kq2m4n6p8r2s4t6v8x2z4b6d8f2"
STUDENTS = ["a23-042", "a23-043"]
FULL = {
    "name": "dblab-2026s1",
    "tenancyId": TENANCY,
    "instructorEmail": "prof@uni.example.edu",
    "monthlyBudgetUsd": 10,
    "studentCompartments": True,
    "allowedShapes": ["VM.Standard.E2.1.Micro", "VM.Standard.A1.Flex"],
}
BUDGET = "oci:Budget/budget:Budget"
RULE = "oci:Budget/rule:Rule"
COMP = "oci:Identity/compartment:Compartment"
QUOTA = "oci:Limits/quota:Quota"
SUB = "oci:Ons/subscription:Subscription"
TOPIC = "oci:Ons/notificationTopic:NotificationTopic"


def plan_layer(spec: LayerSpec) -> Plan:
    return run_program({tenancy.CONFIG_KEY: spec.to_json()}, stack="class", project_dir=tenancy.LAYER_DIR)


def of(plan: Plan, t: str) -> list:
    return [r for r in plan.resources if r.resource_type == t]


# --- the class file's section ------------------------------------------------------------------------------------
def test_a_full_section_parses() -> None:
    spec = parse_layer(FULL, STUDENTS)
    assert (spec.name, spec.monthly_budget_usd, spec.student_compartments) == ("dblab-2026s1", 10, True)
    assert spec.allowed_shapes == ("VM.Standard.E2.1.Micro", "VM.Standard.A1.Flex")
    assert spec_from_json(spec.to_json()) == spec
    assert not any("instructorEmail" in w for w in spec.warnings)
    bare = parse_layer({"name": "c1", "tenancyId": TENANCY}, STUDENTS)
    assert bare.monthly_budget_usd is None and not bare.student_compartments
    assert any("instructorEmail is not set" in w for w in bare.warnings)


@pytest.mark.parametrize(
    "change, key, why",
    [
        ({"monthlyBudgetUsd": 0}, "monthlyBudgetUsd", "not above 0"),
        ({"monthlyBudgetUsd": -5}, "monthlyBudgetUsd", "not above 0"),
        ({"monthlyBudgetUsd": 2.5}, "monthlyBudgetUsd", "whole number"),
        ({"monthlyBudgetUsd": "ten"}, "monthlyBudgetUsd", "not a number"),
        ({"monthlyBudgetUsd": True}, "monthlyBudgetUsd", "not a number"),
        ({"instructorEmail": "prof@"}, "instructorEmail", "not one e-mail address"),
        ({"instructorEmail": "a@b.edu, c@d.edu"}, "instructorEmail", "not one e-mail address"),
        ({"allowedShapes": ["VM.Standard.E2.1.Mikro"]}, "allowedShapes", "did you mean VM.Standard.E2.1.Micro"),
        ({"allowedShapes": ["VM.Standard.A2.Flex"]}, "allowedShapes", "with a known compartment quota name"),
        ({"allowedShapes": []}, "allowedShapes", "non-empty list"),
        ({"studentCompartments": False}, "allowedShapes", "set studentCompartments: true"),
        ({"studentCompartments": "yes"}, "studentCompartments", "not true or false"),
        ({"name": "dblab 2026"}, "name", "must start with a letter"),
        ({"name": "db.lab"}, "name", "no '.'"),
        ({"name": None}, "name", "is required"),
        ({"tenancyId": COMPARTMENT}, "tenancyId", "not a tenancy OCID"),
        ({"ocpusPerStudent": 0}, "ocpusPerStudent", "1..64"),
        ({"monthlyBudget": 10}, "monthlyBudget", "did you mean monthlyBudgetUsd"),
    ],
)
def test_bad_inputs_name_file_line_key_and_an_example(change: dict, key: str, why: str) -> None:
    data = {**FULL, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(LayerError) as e:
        parse_layer(data, STUDENTS, "class.yaml", {key: 7, "": 3})
    text = str(e.value)
    assert f"class.yaml:7: classLayer.{key}: " in text and why in text, text
    assert "nothing was created" in text
    if key in tenancy_keys():
        assert "Example: " in text


def tenancy_keys() -> tuple[str, ...]:
    from components.tenancy import KEYS

    return tuple(KEYS)


def test_lines_come_from_the_class_file() -> None:
    text = "compartmentId: x\nclassLayer:\n  name: dblab-2026s1\n  tenancyId: " + TENANCY + "\n  monthlyBudgetUsd: 0\n"
    assert tenancy.section_lines(text) == {"": 2, "name": 3, "tenancyId": 4, "monthlyBudgetUsd": 5}
    with pytest.raises(LayerError, match=r"class.yaml:5: classLayer.monthlyBudgetUsd"):
        tenancy.layer_from_text(text, STUDENTS, "class.yaml")
    with pytest.raises(LayerError, match="has no classLayer section"):
        tenancy.layer_from_text("compartmentId: x\n", STUDENTS, "class.yaml")
    with pytest.raises(LayerError, match="per-student"):
        tenancy.layer_from_text(text.replace(": 0", ": 5"), STUDENTS, "class.yaml", tenancies="per-student")


# --- the program under the mocks -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_plan() -> Plan:
    return plan_layer(parse_layer(FULL, STUDENTS))


def test_tag_namespace_and_cost_tracking_tag_are_kept_on_destroy(full_plan: Plan) -> None:
    [ns] = of(full_plan, "oci:Identity/tagNamespace:TagNamespace")
    [tag] = of(full_plan, "oci:Identity/tag:Tag")
    assert ns.props["compartmentId"] == TENANCY and ns.props["name"] == "dblab-2026s1"
    assert (tag.props["name"], tag.props["isCostTracking"], tag.props["isRetired"]) == ("student", True, False)
    assert ns.retain_on_delete and tag.retain_on_delete
    assert not any(r.retain_on_delete for r in full_plan.resources if r not in (ns, tag))


def test_student_compartments_quotas_and_budgets(full_plan: Plan) -> None:
    comps = {r.props["name"]: r for r in of(full_plan, COMP)}
    assert set(comps) == {"dblab-2026s1", "dblab-2026s1-a23-042", "dblab-2026s1-a23-043"}
    assert all(r.props["enableDelete"] is True for r in comps.values())
    student = comps["dblab-2026s1-a23-042"]
    assert student.props["definedTags"] == {"dblab-2026s1.student": "a23-042"}
    assert student.props["compartmentId"] == comps["dblab-2026s1"].id
    quotas = of(full_plan, QUOTA)
    assert len(quotas) == 2 and all(q.props["compartmentId"] == TENANCY for q in quotas)
    for q in quotas:
        parsed = [parse_statement(s) for s in q.props["statements"]]
        assert parsed[0]["action"] == "zero" and parsed[0]["name"] is None
        assert {p["name"] for p in parsed[1:]} == {"standard-e2-micro-core-count", "standard-a1-core-count"}
        for p in parsed:  # every statement names a compartment the plan creates, by its path from the root
            parent, child = p["path"].split(":")
            assert parent in comps and child in comps and comps[child].props["compartmentId"] == comps[parent].id
    budgets = {r.name: r for r in of(full_plan, BUDGET)}
    assert len(budgets) == 2
    b = budgets["class-a23-042-budget"]
    assert (b.props["amount"], b.props["resetPeriod"], b.props["targetType"]) == (10, "MONTHLY", "COMPARTMENT")
    assert b.props["targets"] == [student.id] and b.props["compartmentId"] == TENANCY
    rules = [r for r in of(full_plan, RULE) if r.props["budgetId"] == b.id]
    assert sorted((r.props["type"], r.props["threshold"]) for r in rules) == [
        ("ACTUAL", 50),
        ("ACTUAL", 80),
        ("ACTUAL", 100),
        ("FORECAST", 100),
    ]
    assert all(r.props["thresholdType"] == "PERCENTAGE" for r in rules)
    assert all(r.props["recipients"] == "prof@uni.example.edu" for r in rules)
    [sub] = of(full_plan, SUB)
    assert (sub.props["protocol"], sub.props["endpoint"]) == ("EMAIL", "prof@uni.example.edu")
    [topic] = of(full_plan, TOPIC)
    assert topic.props["name"] == "dblab-2026s1-instructor" and topic.props["compartmentId"] == comps["dblab-2026s1"].id
    assert full_plan.outputs["studentCompartments"] == {
        "a23-042": student.id,
        "a23-043": comps["dblab-2026s1-a23-043"].id,
    }


def test_without_budget_email_or_compartments_only_the_tag_and_topic() -> None:
    plan = plan_layer(parse_layer({"name": "c1", "tenancyId": TENANCY}, STUDENTS))
    types = {r.resource_type for r in plan.resources if r.custom}
    assert types == {"oci:Identity/tagNamespace:TagNamespace", "oci:Identity/tag:Tag", TOPIC}
    assert of(plan, TOPIC)[0].props["compartmentId"] == TENANCY
    assert any("instructorEmail is not set" in w for w in plan.warnings)
    assert plan.outputs["studentCompartments"] == {} and plan.outputs["budgets"] == {}


def test_a_budget_without_compartments_targets_the_students_tag_value() -> None:
    plan = plan_layer(parse_layer({"name": "c1", "tenancyId": TENANCY, "monthlyBudgetUsd": 25}, STUDENTS))
    targets = sorted((b.props["targetType"], b.props["targets"][0]) for b in of(plan, BUDGET))
    assert targets == [("TAG", "c1.student.a23-042"), ("TAG", "c1.student.a23-043")]
    [tag] = of(plan, "oci:Identity/tag:Tag")
    assert all(tag.urn in b.dependencies for b in of(plan, BUDGET))  # the tag exists before a budget targets it
    assert all(r.props.get("recipients") in (None, "") for r in of(plan, RULE)) and len(of(plan, RULE)) == 8
    assert not of(plan, SUB) and not of(plan, QUOTA)


def test_retired_layer_turns_cost_tracking_off() -> None:
    spec = parse_layer(FULL, STUDENTS)
    plan = plan_layer(LayerSpec(**{**spec.__dict__, "retire": True}))
    [ns] = of(plan, "oci:Identity/tagNamespace:TagNamespace")
    [tag] = of(plan, "oci:Identity/tag:Tag")
    assert ns.props["isRetired"] is True and tag.props["isRetired"] is True and tag.props["isCostTracking"] is False
    assert plan.outputs["retired"] is True


def test_outside_the_home_region_nothing_is_declared() -> None:
    config = {tenancy.CONFIG_KEY: parse_layer(FULL, STUDENTS).to_json(), "oci:region": "ap-singapore-1"}
    away = MockCloud(region="ap-singapore-1", home_region="us-ashburn-1")
    with pytest.raises(ProgramError, match="home region is us-ashburn-1") as e:
        run_program(config, stack="class", project_dir=tenancy.LAYER_DIR, cloud=away)
    assert "region: us-ashburn-1" in str(e.value) and e.value.resources == []
    home = run_program(config, stack="class", project_dir=tenancy.LAYER_DIR, cloud=MockCloud(region="ap-singapore-1"))
    assert of(home, BUDGET)


def test_the_program_checks_its_config_again() -> None:
    bad = json.loads(parse_layer(FULL, STUDENTS).to_json())
    bad["monthly_budget_usd"] = -1
    with pytest.raises(ProgramError, match="(?s)oci-dblab-class:layer: .*monthlyBudgetUsd: -1 is not above 0"):
        run_program({tenancy.CONFIG_KEY: json.dumps(bad)}, stack="class", project_dir=tenancy.LAYER_DIR)


def test_quota_statements_grammar() -> None:
    assert quota_statements(parse_layer({"name": "c1", "tenancyId": TENANCY}, STUDENTS), "a23-042") == []
    with pytest.raises(ValueError):
        parse_statement("set compute-core quota standard-a1-core-count in compartment x")  # set needs a value
    with pytest.raises(ValueError):
        parse_statement("zero compute-core quotas to 3 in compartment x")


# --- the cloud runner's arguments ---------------------------------------------------------------------------------
def test_cloud_arguments_point_at_the_tenancy_program() -> None:
    spec = parse_layer(FULL, STUDENTS)
    job = tenancy.layer_job(spec, "ap-singapore-1")
    a = automation_args(job, None)
    assert a.stack_name == "class-dblab-2026s1" and Path(a.work_dir) == tenancy.LAYER_DIR
    assert a.config[tenancy.CONFIG_KEY] == (spec.to_json(), False)
    assert a.config["oci:region"] == ("ap-singapore-1", False)
    assert a.env_vars["PULUMI_BACKEND_URL"].startswith("file://") and "tenancy" in a.env_vars["PULUMI_BACKEND_URL"]
    assert (tenancy.LAYER_DIR / "Pulumi.yaml").read_text().startswith("name: oci-dblab-class")


# --- the command --------------------------------------------------------------------------------------------------
@pytest.fixture()
def class_dir(tmp_path: Path) -> Path:
    a, b = make_ssh_public_key("a"), make_ssh_public_key("b")
    (tmp_path / "roster.csv").write_text(
        "student_id,name,email,ssh_public_key,admin_cidr\n"
        f"a23-042,Siti,siti@student.example.ac.id,{a},198.51.100.23/32\n"
        f"a23-043,Budi,budi@student.example.ac.id,{b},198.51.100.24/32\n"
    )
    section = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in FULL.items())
    (tmp_path / "class.yaml").write_text(
        f"compartmentId: {COMPARTMENT}\nconfig:\n  connectionCheck: false\nclassLayer:\n{section}\n"
    )
    return tmp_path


def cli(d: Path, verb: str, *extra: str) -> int:
    return main(
        ["class", verb, str(d / "roster.csv"), "--class-config", str(d / "class.yaml"), "--out-dir", str(d / "run")]
        + list(extra)
    )


def test_setup_and_teardown_offline(class_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(class_dir, "setup", "--offline") == 0
    out = capsys.readouterr().out
    assert "offline runner: OCI mocked, nothing created" in out and "8 alert rules" in out
    state = json.loads((class_dir / "run" / tenancy.STATE_FILE).read_text())
    assert (state["action"], state["status"], state["runner"]) == ("setup", "succeeded", "offline")
    assert "offline runner" in (class_dir / "run" / tenancy.REPORT_FILE).read_text()
    # student stacks take the tag namespace and their compartments, from an offline setup for offline runs only
    roster, cls = load_roster(class_dir / "roster.csv"), load_class_config(class_dir / "class.yaml")
    args = argparse.Namespace(offline=True, out_dir=str(class_dir / "run"), project_dir=str(tenancy.REPO_ROOT))
    [job, _] = _class_jobs(roster.students, cls, args, class_dir / "run")
    assert job.config["oci-dblab:studentTagNamespace"] == "dblab-2026s1"
    assert job.config["oci-dblab:compartmentId"] == state["outputs"]["studentCompartments"]["a23-042"]
    args.offline = False
    [cloud_job, _] = _class_jobs(roster.students, cls, args, class_dir / "run")
    assert "oci-dblab:studentTagNamespace" not in cloud_job.config
    assert cloud_job.config["oci-dblab:compartmentId"] == COMPARTMENT
    assert cli(class_dir, "teardown", "--offline") == 0
    state = json.loads((class_dir / "run" / tenancy.STATE_FILE).read_text())
    assert state["action"] == "teardown" and [s["action"] for s in state["steps"]] == ["up", "destroy"]
    assert tenancy.student_overrides(class_dir / "run", "offline") == {}
    assert "retired, cost tracking off" in capsys.readouterr().out


def test_bad_class_layer_exits_2_before_anything(class_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (class_dir / "class.yaml").read_text().replace("monthlyBudgetUsd: 10", "monthlyBudgetUsd: 0")
    (class_dir / "class.yaml").write_text(text)
    line = text.splitlines().index("  monthlyBudgetUsd: 0") + 1
    assert cli(class_dir, "setup", "--offline") == 2
    err = capsys.readouterr().err
    assert f"class.yaml:{line}: classLayer.monthlyBudgetUsd: 0 is not above 0" in err and "Traceback" not in err
    assert not (class_dir / "run").exists()


def test_a_held_lock_or_a_broken_state_starts_nothing(class_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = class_dir / "run"
    run.mkdir()
    with exclusive_lock(run / tenancy.LOCK_FILE, what="another setup"):
        assert cli(class_dir, "setup", "--offline") == 2
    assert "nothing was started" in capsys.readouterr().err and not (run / tenancy.STATE_FILE).exists()
    (run / tenancy.STATE_FILE).write_text("{not json")
    assert cli(class_dir, "setup", "--offline") == 2
    assert "move it away" in capsys.readouterr().err


class _InterruptingRunner:
    """Sends this process a SIGINT during its first step, as a Ctrl-C would."""

    kind = "offline"

    def __init__(self) -> None:
        self.actions: list[str] = []

    def run(self, job: StackJob, action: str, log: Path, attempt: int) -> StackResult:
        self.actions.append(action)
        if len(self.actions) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return StackResult(job.student_id, job.stack, action, "succeeded")

    def interrupt(self, signal_name: str) -> None:
        pass

    def abort(self) -> None:
        pass


def test_ctrl_c_during_teardown_lets_the_step_finish_and_starts_no_destroy(tmp_path: Path) -> None:
    runner = _InterruptingRunner()
    spec = parse_layer(FULL, STUDENTS)
    run = tenancy.run_layer("teardown", spec, tenancy.layer_job, runner, tmp_path)
    assert runner.actions == ["up"] and run.interrupted == "SIGINT" and not run.ok
    state = json.loads((tmp_path / tenancy.STATE_FILE).read_text())
    assert state["status"] == "interrupted" and state["interrupted"] == "SIGINT"


def test_a_broken_layer_state_stops_class_up_with_exit_2(class_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (class_dir / "run").mkdir()
    (class_dir / "run" / tenancy.STATE_FILE).write_text("{cut short")
    assert cli(class_dir, "up", "--offline") == 2
    err = capsys.readouterr().err
    assert tenancy.STATE_FILE in err and "move it away" in err and "Traceback" not in err


def test_the_example_class_file_sets_up_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    examples = tenancy.REPO_ROOT / "examples"
    argv = ["class", "setup", str(examples / "roster.csv"), "--class-config", str(examples / "class.yaml")]
    assert main([*argv, "--offline", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tag namespace dblab-2026s1" in out and "TAG targets" in out


def test_teardown_waits_for_the_students_stacks(class_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labctl.classrun import save_state

    run = class_dir / "run"
    run.mkdir()
    up = {"action": "up", "status": "succeeded", "runner": "offline"}
    save_state(run, {"student-a23-042": up, "student-a23-043": {**up, "action": "destroy"}})
    assert cli(class_dir, "teardown", "--offline") == 2
    err = capsys.readouterr().err
    assert "1 student stack(s) are still up (student-a23-042" in err and "labctl class destroy" in err
    assert not (run / tenancy.STATE_FILE).exists()
    assert cli(class_dir, "setup", "--offline") == 0
    save_state(run, {"student-a23-042": {**up, "runner": "cloud"}})  # a real stack does not block a dry run
    assert cli(class_dir, "teardown", "--offline") == 0
    save_state(run, {"student-a23-042": up})
    assert cli(class_dir, "setup", "--offline") == 0
    assert cli(class_dir, "teardown", "--offline", "--force") == 0


def test_teardown_without_a_setup_has_nothing_to_tear_down(class_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = class_dir / "run" / tenancy.STATE_FILE
    assert cli(class_dir, "teardown", "--offline") == 2  # the CLI's exit code for bad input, nothing changed
    err = capsys.readouterr().err
    assert f"nothing to tear down: no class layer state {state}" in err and "Traceback" not in err
    assert not state.exists()
    assert cli(class_dir, "setup", "--offline") == 0
    assert cli(class_dir, "teardown", "--offline") == 0
    assert cli(class_dir, "teardown", "--offline") == 2  # twice: the first one already tore it down
    assert "already torn down" in capsys.readouterr().err
    doc = json.loads(state.read_text())
    state.write_text(json.dumps({**doc, "action": "setup", "runner": "cloud"}))
    assert cli(class_dir, "teardown", "--offline") == 2  # a dry run never overwrites a real layer's record
    assert "records a cloud setup" in capsys.readouterr().err
    assert json.loads(state.read_text())["runner"] == "cloud"


def test_without_the_pulumi_cli_the_cloud_path_starts_nothing(
    class_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = class_dir / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("OCI_CLI_CONFIG_FILE", str(class_dir / "no-oci-config"))
    assert cli(class_dir, "setup") == 2
    err = capsys.readouterr().err
    assert "cloud runner cannot start; nothing was created" in err and "Pulumi CLI is not on PATH" in err
    assert not (class_dir / "run").exists()


def test_the_quota_must_let_the_class_own_vms_in(class_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (class_dir / "class.yaml").read_text()
    (class_dir / "class.yaml").write_text(
        text.replace('["VM.Standard.E2.1.Micro", "VM.Standard.A1.Flex"]', '["VM.Standard.A1.Flex"]')
    )
    assert cli(class_dir, "setup", "--offline") == 2
    err = capsys.readouterr().err
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "allowedShapes" in t)
    assert f"class.yaml:{line}: classLayer.allowedShapes: the class's appShape VM.Standard.E2.1.Micro" in err
    flex = (
        text.replace("connectionCheck: false", "connectionCheck: false\n  appOcpus: 2")
        + "appShape: VM.Standard.A1.Flex\n"
    )
    (class_dir / "class.yaml").write_text(flex)
    assert cli(class_dir, "setup", "--offline") == 2
    assert "ocpusPerStudent: 1 is below the class's appOcpus 2" in capsys.readouterr().err
    (class_dir / "class.yaml").write_text(flex.replace("classLayer:", "classLayer:\n  ocpusPerStudent: 2"))
    assert cli(class_dir, "setup", "--offline") == 0


@pytest.mark.parametrize("verb", ["validate", "preflight"])
def test_validate_and_preflight_judge_the_class_layer_too(
    class_dir: Path, capsys: pytest.CaptureFixture[str], verb: str
) -> None:
    """Before the term the instructor validates the whole class file: a class layer that setup would refuse is
    refused here already, with its line, exit 2."""
    files = [str(class_dir / "roster.csv"), "--class-config", str(class_dir / "class.yaml"), "--no-plan"]
    text = (class_dir / "class.yaml").read_text()
    bad = text.replace("monthlyBudgetUsd: 10", "monthlyBudgetUsd: -3")
    (class_dir / "class.yaml").write_text(bad)
    assert main(["class", verb, *files]) == 2
    err = capsys.readouterr().err
    line = bad.splitlines().index("  monthlyBudgetUsd: -3") + 1
    assert f"class.yaml:{line}: classLayer.monthlyBudgetUsd: -3 is not above 0" in err and "Traceback" not in err
    (class_dir / "class.yaml").write_text(text)
    assert main(["class", verb, *files]) in (0, 1)  # 1: preflight's verdict, not an input problem
    assert "classLayer" not in capsys.readouterr().err


def test_class_up_judges_the_class_layer_as_setup_does(class_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``class up`` reads the layer's state, but a class file whose section setup would refuse stops it too, with
    the line, exit 2, before anything runs (no out-dir, no plan)."""
    text = (class_dir / "class.yaml").read_text()
    bad = text.replace("monthlyBudgetUsd: 10", "monthlyBudgetUsd: 2.5")
    (class_dir / "class.yaml").write_text(bad)
    line = bad.splitlines().index("  monthlyBudgetUsd: 2.5") + 1
    assert cli(class_dir, "up", "--offline") == 2
    err = capsys.readouterr().err
    assert f"class.yaml:{line}: classLayer.monthlyBudgetUsd" in err and "whole number" in err
    assert "Traceback" not in err and not (class_dir / "run").exists()


@pytest.mark.parametrize("verb", ["validate", "preflight", "up"])
def test_every_verb_judges_the_quota_fit_as_setup_does(
    class_dir: Path, capsys: pytest.CaptureFixture[str], verb: str
) -> None:
    """The quota's fit with the class's app VM (setup's own check beyond the section's keys) is judged alike."""
    text = (class_dir / "class.yaml").read_text()
    (class_dir / "class.yaml").write_text(
        text.replace('["VM.Standard.E2.1.Micro", "VM.Standard.A1.Flex"]', '["VM.Standard.A1.Flex"]')
    )
    extra = ["--offline"] if verb == "up" else ["--no-plan"]
    assert cli(class_dir, "setup", "--offline") == 2
    setup_err = capsys.readouterr().err
    assert "the class's appShape VM.Standard.E2.1.Micro is not in it" in setup_err
    if verb == "up":
        assert cli(class_dir, verb, *extra) == 2
    else:
        assert (
            main(
                ["class", verb, str(class_dir / "roster.csv"), "--class-config", str(class_dir / "class.yaml"), *extra]
            )
            == 2
        )
    err = capsys.readouterr().err
    assert "classLayer.allowedShapes: the class's appShape VM.Standard.E2.1.Micro is not in it" in err
    assert not (class_dir / "run").exists()
