"""labctl class stop|start: the DB systems' target state through the stack config and `pulumi up` (dbState), the
arguments the cloud runner would send, and a whole offline run that plans each DB system INACTIVE, then ACTIVE."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import COMPARTMENT, make_ssh_public_key

from components.config import ConfigError, parse_config
from labctl.cli import main
from labctl.dbpower import DB_STATE_KEY, power_jobs, runner_note, title
from labctl.runners import StackJob, automation_args

DB_SYSTEM = "oci:Mysql/mysqlDbSystem:MysqlDbSystem"
BASE = {"compartmentId": COMPARTMENT, "sshPublicKey": make_ssh_public_key(), "adminCidr": "198.51.100.7/32"}


def test_power_jobs_set_only_the_db_state_and_leave_the_jobs_alone(tmp_path):
    jobs = [
        StackJob("a1", "student-a1", {"oci-dblab:studentId": "a1", "oci:region": "ap-singapore-1"}, ("x",)),
        StackJob("a2", "student-a2", {"oci-dblab:studentId": "a2", DB_STATE_KEY: "ACTIVE"}),
    ]
    stopped = power_jobs(jobs, "stop")
    assert [j.config[DB_STATE_KEY] for j in stopped] == ["INACTIVE", "INACTIVE"]
    assert stopped[0].config["oci:region"] == "ap-singapore-1" and stopped[0].secret_keys == ("x",)
    assert DB_STATE_KEY not in jobs[0].config and jobs[1].config[DB_STATE_KEY] == "ACTIVE"  # originals unchanged
    assert [j.config[DB_STATE_KEY] for j in power_jobs(stopped, "start")] == ["ACTIVE", "ACTIVE"]
    with pytest.raises(ValueError, match="unknown power verb 'pause'"):
        power_jobs(jobs, "pause")
    # what the cloud runner hands `set_all_config`: the key, plain (not secret)
    args = automation_args(stopped[0], backend_url="file:///tmp/x")
    assert args.config[DB_STATE_KEY] == ("INACTIVE", False)
    assert "INACTIVE" in title("stop") and "nothing is stopped" in runner_note("stop", offline=True)
    assert "pulumi up" in runner_note("start", offline=False) and "started" in runner_note("start", offline=False)


@pytest.mark.parametrize("given, state", [(None, "ACTIVE"), ("INACTIVE", "INACTIVE"), (" inactive ", "INACTIVE")])
def test_db_state_config(given, state):
    raw = dict(BASE, **({"dbState": given} if given is not None else {}))
    assert parse_config(raw, "dev").db_state == state


def test_a_bad_db_state_is_one_clear_error():
    with pytest.raises(ConfigError) as e:
        parse_config(dict(BASE, dbState="paused"), "dev")
    text = str(e.value)
    assert "dbState" in text and "'paused' is not one of ACTIVE, INACTIVE" in text


@pytest.fixture
def class_dir(tmp_path: Path) -> Path:
    rows = ["student_id,name,email,ssh_public_key,admin_cidr"]
    for i in range(2):
        rows.append(f"p{i},Student {i},p{i}@student.example.ac.id,{make_ssh_public_key(f'p{i}')},198.51.100.{i + 1}/32")
    (tmp_path / "roster.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "class.yaml").write_text(
        f"compartmentId: {COMPARTMENT}\nregion: ap-singapore-1\nconfig: {{connectionCheck: false}}\n"
    )
    return tmp_path


def db_states(out: Path) -> dict[str, str]:
    states = {}
    for f in sorted((out / "plans").glob("*.json")):
        [db] = [r for r in json.loads(f.read_text())["resources"] if r["type"] == DB_SYSTEM]
        states[f.stem] = db["inputs"]["state"]
    return states


def test_offline_stop_then_start_plans_every_db_system_in_that_state(class_dir, capsys):
    out = class_dir / "run"
    common = [str(class_dir / "roster.csv"), "--class-config", str(class_dir / "class.yaml"), "--offline"]
    assert main(["class", "stop", *common, "--out-dir", str(out)]) == 0
    captured = capsys.readouterr()
    assert "offline runner: nothing is stopped; each stack is planned with dbState INACTIVE" in captured.err
    assert "2 succeeded, 0 failed" in captured.out and "(offline runner)" in captured.out
    assert "class stop (offline)" in captured.err and "class up" not in captured.err  # the progress bar's label
    assert db_states(out) == {"student-p0": "INACTIVE", "student-p1": "INACTIVE"}
    report = (out / "class-report.md").read_text()
    assert "oci-dblab class stop (DB systems INACTIVE) (offline runner: OCI mocked, nothing created)" in report
    assert "preflight" not in captured.err  # stop/start create nothing: no preflight

    # --resume skips the stacks already stopped with this config and program
    assert main(["class", "stop", *common, "--out-dir", str(out), "--resume"]) == 0
    assert "0 succeeded, 0 failed, 2 skipped" in capsys.readouterr().out

    assert main(["class", "start", *common, "--out-dir", str(out), "--only", "p1"]) == 0
    assert db_states(out) == {"student-p0": "INACTIVE", "student-p1": "ACTIVE"}
    rows = list(csv.DictReader((out / "class-report.csv").open()))
    assert [(r["student"], r["status"]) for r in rows] == [("p1", "succeeded")]


def test_a_plain_up_plans_the_db_system_active(class_dir, capsys):
    out = class_dir / "run"
    args = ["class", "up", str(class_dir / "roster.csv"), "--class-config", str(class_dir / "class.yaml")]
    assert main([*args, "--offline", "--only", "p0", "--out-dir", str(out)]) == 0
    assert db_states(out) == {"student-p0": "ACTIVE"}


def test_stop_with_an_unknown_student_is_refused(class_dir, capsys):
    args = ["class", "stop", str(class_dir / "roster.csv"), "--class-config", str(class_dir / "class.yaml")]
    assert main([*args, "--offline", "--only", "nobody", "--out-dir", str(class_dir / "run")]) == 2
    err = capsys.readouterr().err
    assert "--only names students not in" in err and "Traceback" not in err
    assert not (class_dir / "run").exists()


def test_the_github_actions_example_is_valid_and_its_crons_are_the_lab_hours_in_utc(tmp_path):
    import shutil
    import subprocess
    import sys
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    import yaml
    from conftest import ROOT

    from components.labhours import parse_lab_hours

    example = ROOT / "examples" / "github-actions" / "lab-db-hours.yml"
    lint = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert lint, "actionlint is a test dependency (pyproject [test])"
    target = tmp_path / ".github" / "workflows" / example.name
    target.parent.mkdir(parents=True)
    shutil.copy(example, target)
    proc = subprocess.run([lint, "-no-color", str(target)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    wf = yaml.safe_load(example.read_text())
    start_cron, stop_cron = (c["cron"] for c in wf[True]["schedule"])  # YAML 1.1 reads `on` as True
    hours = parse_lab_hours("Mon-Fri 07:00-17:00 Asia/Jakarta")
    zone = ZoneInfo(hours.time_zone)
    monday = datetime(2026, 11, 23, tzinfo=zone)  # any week: Jakarta has no daylight saving
    start = (monday.replace(hour=hours.start[0], minute=hours.start[1]) - timedelta(minutes=30)).astimezone(
        ZoneInfo("UTC")
    )
    stop = (monday.replace(hour=hours.end[0], minute=hours.end[1]) + timedelta(minutes=15)).astimezone(ZoneInfo("UTC"))
    # cron day-of-week counts from 0 = Sunday; the start falls on the day before in UTC
    assert start_cron == f"{start.minute} {start.hour} * * {(start.weekday() + 1) % 7}-{(start.weekday() + 5) % 7}"
    assert stop_cron == f"{stop.minute} {stop.hour} * * {(stop.weekday() + 1) % 7}-{(stop.weekday() + 5) % 7}"
    run = "\n".join(s.get("run", "") for s in wf["jobs"]["db-power"]["steps"])
    assert f'"$SCHEDULE" = "{stop_cron}" ]; then verb=stop' in run  # the stop line picks stop, any other start
    assert 'python -m labctl class "$verb" roster.csv' in run


def test_an_engine_that_cannot_be_stopped_refuses_inactive_instead_of_pretending(monkeypatch):
    import dataclasses

    from engines import ENGINES

    stoppable = [e.name for e in ENGINES.values() if e.stop_via]
    assert "mysql" in stoppable
    others = [e for e in ENGINES.values() if not e.stop_via]
    if not others:  # every registered engine can be stopped today: one of them, without its stop_via, stands in
        stand_in = dataclasses.replace(ENGINES["mysql-vm"], stop_via="")
        monkeypatch.setitem(ENGINES, stand_in.name, stand_in)
        others = [stand_in]
    engine = others[0]
    raw = dict(BASE, dbEngine=engine.name, dbShape=engine.example_shape.split()[0], dbState="INACTIVE")
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "dev")
    assert f"engine {engine.name} cannot be stopped through dbState yet" in str(e.value)
    raw["dbState"] = "ACTIVE"
    assert parse_config(raw, "dev").db_state == "ACTIVE"
