"""labctl class: 40 students through the offline runner, fault isolation, retries, resume, reports; and the
Automation API runner's argument building (no CLI needed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import COMPARTMENT, instructor_yaml, make_ssh_public_key

from labctl.classrun import ClassOptions, run_class
from labctl.cli import main
from labctl.roster import load_class_config, load_roster, student_config
from labctl.runners import OfflineRunner, StackJob, automation_args, is_transient

N = 40


def cidr(i: int) -> str:
    return f"198.51.100.{i + 1}/32"


@pytest.fixture(scope="module")
def class_files(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("class")
    rows = ["student_id,name,email,ssh_public_key,admin_cidr"]
    for i in range(N):
        rows.append(f"s{i:02d},Student {i},s{i}@student.example.ac.id,{make_ssh_public_key(f's{i}')},{cidr(i)}")
    (d / "roster.csv").write_text("\n".join(rows) + "\n")
    (d / "class.yaml").write_text(f"compartmentId: {COMPARTMENT}\nregion: ap-singapore-1\n" + instructor_yaml())
    return d / "roster.csv", d / "class.yaml"


def jobs_for(roster: Path, class_yaml: Path) -> list[StackJob]:
    cls = load_class_config(class_yaml)
    out = []
    for s in load_roster(roster).students:
        config, secret = student_config(cls, s)
        out.append(StackJob(s.student_id, s.stack, config, tuple(secret)))
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
    return out, run_class(jobs_for(*class_files), runner, opts)


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
        assert sl["inputs"]["ingressSecurityRules"][0]["source"] == cidr(i)
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
    md = (out / "class-report.md").read_text()
    assert "succeeded: **39**" in md and "failed: **1**" in md
    page = (out / "class-report.html").read_text()
    assert page.count("<tr class='succeeded'>") == N - 1 and "<script" not in page
    assert {p.name for p in paths} == {"class-report.md", "class-report.csv", "class-report.html"}


def test_resume_skips_stacks_already_up_to_date(first_run, class_files):
    out, _ = first_run
    runner = OfflineRunner(plan_dir=out / "plans")
    again = run_class(jobs_for(*class_files), runner, ClassOptions("up", out, parallel=4, resume=True))
    by_status = {s: sorted(r.student_id for r in again.results if r.status == s) for s in ("skipped", "succeeded")}
    assert by_status["succeeded"] == ["s07"]  # only the failed one runs again, and now passes
    assert len(by_status["skipped"]) == N - 1 and again.ok


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
    assert "2 succeeded, 0 failed, 0 skipped" in out.out
    assert "warning: preflight: DOES NOT FIT" in out.err  # 2 MySQL.Free in one tenancy: a dry run only warns
    assert sorted(p.name for p in (tmp_path / "plans").iterdir()) == ["student-s01.json", "student-s02.json"]


def test_real_up_refuses_a_class_that_does_not_fit_before_creating_anything(class_files, tmp_path, capsys):
    roster, class_yaml = class_files  # 40 students, one tenancy: 40 MySQL.Free where 1 is allowed
    code = main(["class", "up", str(roster), "--class-config", str(class_yaml), "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "DOES NOT FIT" in err and "nothing was created" in err and "--ignore-preflight" in err
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
