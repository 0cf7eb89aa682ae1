"""labctl class: 40 students through the offline runner, fault isolation, retries, resume, reports; and the
Automation API runner's argument building (no CLI needed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import COMPARTMENT, INSTRUCTOR_PUB, instructor_yaml, make_ssh_public_key

from labctl.classrun import ClassOptions, run_class
from labctl.cli import main
from labctl.roster import load_class_config, load_roster, student_config
from labctl.runners import OfflineRunner, StackJob, automation_args, is_transient

N = 40


def cidr(i: int) -> str:
    return f"198.51.100.{i + 1}/32"


INSTRUCTOR_CIDR = "203.0.113.50/32"
STUDENT_KEYS = [make_ssh_public_key(f"s{i}") for i in range(N)]


@pytest.fixture(scope="module")
def class_files(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("class")
    rows = ["student_id,name,email,ssh_public_key,admin_cidr"]
    for i in range(N):
        rows.append(f"s{i:02d},Student {i},s{i}@student.example.ac.id,{STUDENT_KEYS[i]},{cidr(i)}")
    (d / "roster.csv").write_text("\n".join(rows) + "\n")
    shared = f"compartmentId: {COMPARTMENT}\nregion: ap-singapore-1\n"
    (d / "class.yaml").write_text(shared + instructor_yaml(cidr=INSTRUCTOR_CIDR))
    return d / "roster.csv", d / "class.yaml"


def jobs_for(roster: Path, class_yaml: Path, env_dir: Path | None = None) -> list[StackJob]:
    cls = load_class_config(class_yaml)
    out = []
    for s in load_roster(roster).students:
        config, secret = student_config(cls, s, env_dir)
        env_file = str(env_dir / s.student_id / ".env") if env_dir else None
        out.append(StackJob(s.student_id, s.stack, config, tuple(secret), env_file=env_file))
    return out


@pytest.fixture(scope="module")
def first_run(class_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    runner = OfflineRunner(
        plan_dir=out / "plans",
        inject={
            "s07": ("oci:Mysql/mysqlDbSystem:MysqlDbSystem", "400 LimitExceeded: mysql free db system count", 99),
            "s03": ("oci:Core/instance:Instance", "500 InternalError: Out of host capacity.", 1),
        },
    )
    opts = ClassOptions("up", out, parallel=8, backoff_seconds=0)
    return out, run_class(jobs_for(*class_files, out / "env"), runner, opts)


def test_every_student_is_planned_with_their_own_config(first_run):
    out, result = first_run
    assert len(result.results) == N
    ok = [r for r in result.results if r.status == "succeeded"]
    assert len(ok) == N - 1
    for r in ok:
        plan = json.loads((out / "plans" / f"{r.stack}.json").read_text())
        i = int(r.student_id[1:])
        [vm] = [x for x in plan["resources"] if x["type"] == "oci:Core/instance:Instance"]
        assert vm["inputs"]["freeformTags"]["student"] == r.student_id
        [sl] = [x for x in plan["resources"] if x["name"] == "lab-public-sl"]
        # SSH from the student's address and the instructor's, nothing else
        assert [r["source"] for r in sl["inputs"]["ingressSecurityRules"]] == [cidr(i), INSTRUCTOR_CIDR]
        # the VM trusts the student's key and the instructor's
        keys = vm["inputs"]["metadata"]["ssh_authorized_keys"].splitlines()
        assert keys == [STUDENT_KEYS[i], INSTRUCTOR_PUB]
        # the check logs in with the instructor's key and writes this student's own .env
        [env] = [x for x in plan["resources"] if x["type"].endswith(":EnvFile")]
        assert env["inputs"]["sshPrivateKeyPath"] == "~/.ssh/course_ed25519"
        assert env["inputs"]["localPath"] == str(out / "env" / r.student_id / ".env") == r.env_file
        assert plan["outputs"]["dbAdminPassword"] == "[secret]"
        assert r.monthly_cost == 0.0 and r.outputs["dbPrivateIp"].startswith("10.0.1.")
    assert len({r.outputs["appPublicIp"] for r in ok}) > 1  # deterministic per stack, not one shared value


def test_one_failure_is_isolated_and_transient_errors_are_retried(first_run):
    out, result = first_run
    by_id = {r.student_id: r for r in result.results}
    assert by_id["s07"].status == "failed" and "LimitExceeded" in by_id["s07"].error
    assert by_id["s07"].attempts == 1  # not transient: not retried
    assert by_id["s03"].status == "succeeded" and by_id["s03"].attempts == 2
    assert not result.ok
    assert "LimitExceeded" in (out / "logs" / "student-s07.log").read_text()
    assert len(list((out / "logs").glob("*.log"))) == N


def test_reports_are_written_and_correct(first_run):
    from labctl.classrun import write_reports

    out, result = first_run
    paths = write_reports(result, out)
    rows = list(csv.DictReader((out / "class-report.csv").open()))
    assert [r["stack"] for r in rows] == sorted(f"student-s{i:02d}" for i in range(N))
    failed = [r for r in rows if r["status"] == "failed"]
    assert [r["student"] for r in failed] == ["s07"] and "LimitExceeded" in failed[0]["error"]
    s03 = next(r for r in rows if r["student"] == "s03")
    assert s03["attempts"] == "2" and s03["db_private_ip"].startswith("10.0.1.") and s03["monthly_cost_usd"] == "0.00"
    assert s03["env_file"] == str(out / "env" / "s03" / ".env")
    md = (out / "class-report.md").read_text()
    assert "succeeded: **39**" in md and "failed: **1**" in md
    assert md.startswith("# Class report (offline runner: OCI mocked, nothing created): `up`")
    page = (out / "class-report.html").read_text()
    assert page.count("<tr class='succeeded'>") == N - 1 and "<script" not in page
    assert {p.name for p in paths} == {"class-report.md", "class-report.csv", "class-report.html"}


def test_resume_skips_stacks_already_up_to_date(first_run, class_files):
    out, _ = first_run
    runner = OfflineRunner(plan_dir=out / "plans")
    again = run_class(jobs_for(*class_files, out / "env"), runner, ClassOptions("up", out, parallel=4, resume=True))
    by_status = {s: sorted(r.student_id for r in again.results if r.status == s) for s in ("skipped", "succeeded")}
    assert by_status["succeeded"] == ["s07"]  # only the failed one runs again, and now passes
    assert len(by_status["skipped"]) == N - 1 and again.ok
    state = json.loads((out / "class-state.json").read_text())
    assert state["schemaVersion"] == 2
    rec = state["stacks"]["student-s01"]
    assert rec["runner"] == "offline" and len(rec["configHash"]) == 16 and len(rec["program"]) == 16


class FakeCloudRunner:
    """The cloud runner's interface without Pulumi or OCI: records what it was asked to run."""

    kind = "cloud"

    def __init__(self) -> None:
        self.ran: list[str] = []

    def run(self, job, action, log, attempt):
        from labctl.runners import StackResult

        self.ran.append(job.student_id)
        return StackResult(job.student_id, job.stack, action, "succeeded", outputs={"appPublicIp": "192.0.2.9"})

    def interrupt(self, signal_name):
        pass

    def abort(self):
        pass


def test_offline_results_never_satisfy_a_cloud_resume(class_files, tmp_path):
    jobs = jobs_for(*class_files, tmp_path / "env")[:5]
    offline = run_class(jobs, OfflineRunner(), ClassOptions("up", tmp_path, parallel=2))
    assert offline.count("succeeded") == 5
    cloud = FakeCloudRunner()
    first = run_class(jobs, cloud, ClassOptions("up", tmp_path, parallel=2, resume=True))
    assert sorted(cloud.ran) == [j.student_id for j in jobs] and first.count("skipped") == 0
    assert first.runner == "cloud"
    cloud2 = FakeCloudRunner()
    second = run_class(jobs, cloud2, ClassOptions("up", tmp_path, parallel=2, resume=True))
    assert cloud2.ran == [] and second.count("skipped") == 5  # real results do satisfy a real resume
    # and a changed config (here: one student's CIDR) redoes that student only
    changed = [
        jobs[0].__class__(**{**jobs[0].__dict__, "config": {**jobs[0].config, "oci-dblab:adminCidr": "81.2.3.4/32"}})
    ]
    cloud3 = FakeCloudRunner()
    run_class(changed + jobs[1:], cloud3, ClassOptions("up", tmp_path, parallel=2, resume=True))
    assert cloud3.ran == [jobs[0].student_id]


@pytest.mark.parametrize(
    "content,words",
    [
        ('{"schemaVersion": 2, "stacks": {"a": {"status": "succ', "is not valid JSON"),
        ("[1, 2]", "a JSON object was expected"),
        ('{"schemaVersion": 9, "stacks": {}}', "state schema 9"),
        ('{"schemaVersion": 2, "stacks": {"a": 1}}', "not stack records"),
    ],
    ids=["truncated", "list", "future-schema", "bad-entry"],
)
def test_unusable_state_is_a_clear_error_with_the_fix(class_files, tmp_path, capsys, content, words):
    roster, class_yaml = class_files
    (tmp_path / "class-state.json").write_text(content)
    argv = ["class", "up", str(roster), "--class-config", str(class_yaml), "--offline", "--only", "s01"]
    assert main([*argv, "--resume", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert words in err and "mv " in err and "Traceback" not in err
    assert not (tmp_path / "logs").exists()  # nothing started


def test_a_second_run_in_the_same_out_dir_is_refused_naming_the_holder(class_files, tmp_path, capsys):
    import subprocess
    import sys

    from conftest import ROOT

    roster, class_yaml = class_files
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from components.portable import exclusive_lock\n"
            f"with exclusive_lock(Path({str(tmp_path)!r}) / '.class-run.lock', what='x'):\n"
            "    print('held', flush=True)\n"
            "    sys.stdin.readline()\n",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        argv = ["class", "up", str(roster), "--class-config", str(class_yaml), "--offline", "--only", "s01"]
        assert main([*argv, "--out-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert f"PID {holder.pid}" in err and "nothing was started" in err
        assert not (tmp_path / "class-state.json").exists()
    finally:
        holder.communicate("\n", timeout=30)
    # once the first run is gone, the directory is free again
    argv = ["class", "up", str(roster), "--class-config", str(class_yaml), "--offline", "--only", "s01"]
    assert main([*argv, "--out-dir", str(tmp_path)]) == 0


def test_cli_offline_up_for_two_students_and_exit_status(class_files, tmp_path, capsys):
    roster, class_yaml = class_files
    code = main(
        [
            "class",
            "up",
            str(roster),
            "--class-config",
            str(class_yaml),
            "--offline",
            "--only",
            "s01,s02",
            "--out-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    out = capsys.readouterr()
    assert "2 succeeded, 0 failed, 0 skipped, 0 not started" in out.out and "(offline runner)" in out.out
    assert "warning: preflight: DOES NOT FIT" in out.err  # 2 MySQL.Free in one tenancy: a dry run only warns
    assert sorted(p.name for p in (tmp_path / "plans").iterdir()) == ["student-s01.json", "student-s02.json"]
    for sid in ("s01", "s02"):  # each student's .env directory exists, private to the instructor
        assert ((tmp_path / "env" / sid).stat().st_mode & 0o777) == 0o700
    rows = list(csv.DictReader((tmp_path / "class-report.csv").open()))
    assert [r["env_file"] for r in rows] == [str(tmp_path / "env" / s / ".env") for s in ("s01", "s02")]


def test_real_up_refuses_a_class_that_does_not_fit_before_creating_anything(class_files, tmp_path, capsys, monkeypatch):
    from test_cloud_runner import fake_tools

    tools = tmp_path / "tools"
    tools.mkdir()
    for k, v in fake_tools(tools, {"DEFAULT": "r"}).items():
        monkeypatch.setenv(k, v)
    roster, class_yaml = class_files  # 40 students, one tenancy: 40 MySQL.Free where 1 is allowed
    code = main(["class", "up", str(roster), "--class-config", str(class_yaml), "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "DOES NOT FIT" in err and "nothing was created" in err and "--ignore-preflight" in err
    assert "cloud runner: Pulumi CLI v3.272.0" in err  # the tools were checked first
    assert not (tmp_path / "logs").exists()


def test_cli_rejects_unknown_only_and_bad_parallel(class_files, tmp_path, capsys):
    roster, class_yaml = class_files
    assert (
        main(
            [
                "class",
                "up",
                str(roster),
                "--class-config",
                str(class_yaml),
                "--offline",
                "--only",
                "zz9",
                "--out-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "--only names students not in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["class", "up", str(roster), "--parallel", "0"])


def test_automation_args_stack_names_config_and_secret_flags(tmp_path, monkeypatch):
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    job = StackJob(
        "s01",
        "student-s01",
        {"oci-dblab:sshPublicKey": "ssh-ed25519 AAA", "oci-dblab:dbPassword": "X", "oci:region": "ap-singapore-1"},
        ("oci-dblab:dbPassword",),
        tmp_path,
    )
    a = automation_args(job, backend_url=None)
    assert a.stack_name == "student-s01" and a.work_dir == str(tmp_path)
    assert a.config == {
        "oci-dblab:dbPassword": ("X", True),
        "oci-dblab:sshPublicKey": ("ssh-ed25519 AAA", False),
        "oci:region": ("ap-singapore-1", False),
    }
    assert a.secrets_provider == "passphrase"
    assert a.env_vars["PULUMI_BACKEND_URL"] == f"file://{tmp_path / '.pulumi-state'}"
    assert automation_args(job, "s3://bucket").env_vars["PULUMI_BACKEND_URL"] == "s3://bucket"
    monkeypatch.setenv("PULUMI_BACKEND_URL", "file:///srv/state")
    assert automation_args(job).env_vars["PULUMI_BACKEND_URL"] == "file:///srv/state"


@pytest.mark.parametrize(
    ("text", "transient"),
    [
        ("429 TooManyRequests", True),
        ("500 InternalError: Out of host capacity.", True),
        ("503 ServiceUnavailable", True),
        ("400 LimitExceeded", False),
        ("401 NotAuthenticated", False),
    ],
)
def test_transient_classification(text, transient):
    assert is_transient(text) is transient


def test_cloud_runs_are_judged_offline_first_and_a_finding_blocks_that_student(class_files, tmp_path):
    from labctl.runners import JudgedRunner

    jobs = jobs_for(*class_files)[:3]
    bad = jobs[1]
    # past validation (as if class.yaml allowed it): SSH from a private range
    jobs[1] = bad.__class__(**{**bad.__dict__, "config": {**bad.config, "oci-dblab:adminCidr": "10.0.0.0/8"}})
    cloud = FakeCloudRunner()
    judge = OfflineRunner(processes=2)
    try:
        result = run_class(jobs, JudgedRunner(cloud, judge), ClassOptions("up", tmp_path, parallel=2))
    finally:
        judge.close()
    by_id = {r.student_id: r for r in result.results}
    assert sorted(cloud.ran) == sorted([jobs[0].student_id, jobs[2].student_id])  # never reached the cloud
    blocked = by_id[jobs[1].student_id]
    assert blocked.status == "failed" and blocked.error.startswith("blocked before anything is created")
    assert "security-list-no-admin-ports-from-internet" in blocked.error and "private range" in blocked.error
    assert result.runner == "cloud"


def test_validate_judges_each_student_like_labctl_plan(class_files, capsys):
    from labctl.classrun import judge_class

    roster, class_yaml = class_files
    assert main(["class", "validate", str(roster), "--class-config", str(class_yaml)]) == 0
    assert "40 students, all valid" in capsys.readouterr().out
    jobs = jobs_for(*class_files)[:2]
    jobs[0] = jobs[0].__class__(
        **{**jobs[0].__dict__, "config": {**jobs[0].config, "oci-dblab:adminCidr": "0.0.0.0/1"}}
    )
    blocked = judge_class(jobs, processes=2)
    assert list(blocked) == [jobs[0].student_id] and "'this network'" in blocked[jobs[0].student_id]
