"""labctl plan: the default stack end to end, its JSON schema, and failing plans."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

from labctl.cli import main
from labctl.plan import SCHEMA_VERSION

TOP = {
    "schemaVersion",
    "stack",
    "ok",
    "summary",
    "resources",
    "outputs",
    "verdicts",
    "findings",
    "cost",
    "criticalPath",
    "sizing",
    "labHours",
    "warnings",
}
SUMMARY = {
    "resources",
    "verdictsFailed",
    "mandatoryFindings",
    "advisoryFindings",
    "monthlyCostUsd",
    "criticalPathSeconds",
    "labHoursSavedUsd",
}
RESOURCE = {"urn", "type", "name", "parent", "custom", "id", "dependencies", "inputs", "secretInputs", "ignoreChanges"}
VERDICT = {"id", "source", "destination", "port", "expected", "actual", "ok", "reason"}
FINDING = {"rule", "level", "urn", "name", "message", "source"}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["plan", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def default_json():
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["plan", "--format", "json"])
    return code, json.loads(buf.getvalue())


def test_default_stack_plan_is_ok_and_free(default_json):
    code, doc = default_json
    assert code == 0 and doc["ok"] is True and doc["stack"] == "dev"
    assert doc["summary"]["resources"] == 26  # 17 of the lab + the operations tier (component, topic, 7 alarms)
    assert doc["summary"]["mandatoryFindings"] == 0 and doc["summary"]["verdictsFailed"] == 0
    assert doc["cost"]["total"] == 0.0 and doc["summary"]["monthlyCostUsd"] == 0.0
    verdicts = {v["id"]: v["actual"] for v in doc["verdicts"]}
    assert verdicts["internet->db:3306"] == "DENIED" and verdicts["app-subnet->db:3306"] == "ALLOWED"
    assert verdicts["internet->app:22"] == "ALLOWED" and verdicts["internet-other->app:22"] == "DENIED"
    path = doc["criticalPath"]
    assert path["path"][-2:] == ["lab-mysql", "lab-env"] and 0.95 <= path["ratio"] <= 1.05
    assert 11 * 60 <= path["seconds"] <= 15 * 60


def test_json_schema_is_stable(default_json):
    _, doc = default_json
    assert doc["schemaVersion"] == SCHEMA_VERSION == 1
    assert set(doc) == TOP and set(doc["summary"]) == SUMMARY
    assert all(set(r) == RESOURCE for r in doc["resources"])
    assert all(set(v) == VERDICT for v in doc["verdicts"])
    assert all(set(f) == FINDING for f in doc["findings"])
    assert {"lines", "total", "currency", "sources"} <= set(doc["cost"])
    assert {"path", "seconds", "serial_seconds", "physical_limit_seconds", "ratio"} <= set(doc["criticalPath"])


def test_secrets_are_redacted_in_json(default_json):
    _, doc = default_json
    text = json.dumps(doc)
    assert doc["outputs"]["dbAdminPassword"] == "[secret]"
    [db] = [r for r in doc["resources"] if r["name"] == "lab-mysql"]
    assert db["inputs"]["adminPassword"] == "[secret]" and db["secretInputs"] == ["adminPassword"]
    [pw] = [r for r in doc["resources"] if r["name"] == "lab-admin-password"]
    assert pw["id"] and "result" not in pw["inputs"] and "Aa1!" not in text


def test_text_output_has_tree_verdicts_policy_cost_and_path(capsys):
    code, out, _ = run(capsys)
    assert code == 0
    assert " +   pulumi:pulumi:Stack" in out and "│  ├─ oci:Mysql/mysqlDbSystem:MysqlDbSystem" in out
    assert "[ok  ] internet->db:3306" in out and "no findings" in out
    # the rules judged are named, the operations tier's among them (every DB alarmed to a topic, every resource
    # tagged)
    (policy,) = [line for line in out.splitlines() if line.startswith("Policy (")]
    assert "db-alarm-to-topic" in policy and "student-tag" in policy
    assert "Monthly cost estimate: $0.00" in out and "Critical path of `pulumi up`" in out
    assert out.rstrip().endswith("PLAN OK")


def test_markdown_output(capsys):
    code, out, _ = run(capsys, "--format", "markdown")
    assert code == 0 and out.startswith("### `dev`: ✅ plan ok")
    assert "| `internet->db:3306` | DENIED | DENIED | ✅ |" in out


def test_failing_plan_exits_non_zero(tmp_path, capsys):
    text = (ROOT / "Pulumi.dev.yaml").read_text().replace("203.0.113.7/32", "0.0.0.0/0")
    f = tmp_path / "Pulumi.open.yaml"
    f.write_text(text)
    code, out, _ = run(capsys, "--stack", "open", "--config", str(f))
    assert code == 1
    assert "[FAIL] internet-other->app:22" in out
    assert "[MANDATORY] security-list-no-admin-ports-from-internet" in out
    assert out.rstrip().endswith("PLAN FAILED: a reachability verdict or a mandatory policy failed")


def test_bad_config_and_missing_stack_are_clear(tmp_path, capsys):
    code, _, err = run(capsys, "--stack", "nosuch")
    assert code == 2 and "Pulumi.nosuch.yaml: no such file" in err
    f = tmp_path / "Pulumi.bad.yaml"
    f.write_text("config:\n  oci-dblab:compartmentId: nope\n")
    code, _, err = run(capsys, "--stack", "bad", "--config", str(f))
    # the Pulumi CLI refuses this stack before the program starts (labctl/cliconfig.py), in its own words
    assert code == 2 and "Stack 'bad' is missing configuration values 'adminCidr' and 'sshPublicKey'" in err
    f.write_text(
        "config:\n  oci-dblab:compartmentId: nope\n  oci-dblab:sshPublicKey: x\n  oci-dblab:adminCidr: 1.2.3.4/32\n"
    )
    code, _, err = run(capsys, "--stack", "bad", "--config", str(f))
    # bad input, like the CLI's refusal: exit 2, each problem with the stack file's line of its key
    assert code == 2 and f"{f}:2: oci-dblab:compartmentId: 'nope' is not an OCID" in err
    assert "Traceback" not in err
    assert "oci-dblab:sshPublicKey: the value starts with 'x'" in err


def test_plan_states_the_operations_cost_and_elastic_sizing(default_json, capsys):
    _, doc = default_json
    ops = [ln for ln in doc["cost"]["lines"] if ln["resource_type"].startswith(("oci:Monitoring", "oci:Ons"))]
    assert {ln["item"] for ln in ops} == {"Monitoring alarm", "Notifications topic"}
    assert len(ops) == 8 and all(ln["free"] and ln["monthly"] == 0.0 for ln in ops)
    assert any("500 million ingestion datapoints" in s for s in doc["cost"]["sources"])
    assert doc["sizing"][0].startswith("appShape") and any(s.startswith("dbShape") for s in doc["sizing"])
    assert main(["plan"]) == 0
    text = capsys.readouterr().out
    assert "Elastic sizing" in text and "dbStorageGbs (now 50): changes in place" in text
    assert "lab-ops-vm-down" in text and "Monitoring alarm" in text


@pytest.mark.parametrize(
    "line, words",
    [
        ("oci-dblab:alertEmail: prof@@uni", "oci-dblab:alertEmail: 'prof@@uni' is not one e-mail address"),
        ("oci-dblab:labHours: Mon-Fri 18:00-08:00 UTC", "oci-dblab:labHours: the hours 18:00-08:00 end before"),
        ("oci-dblab:labHours: Mon-Fri 08:00-18:00 Moon/Base", "oci-dblab:labHours: 'Moon/Base' is not an IANA"),
    ],
)
def test_bad_operations_config_is_exit_2_with_file_line_and_example(tmp_path, capsys, line, words):
    text = (ROOT / "Pulumi.dev.yaml").read_text().rstrip("\n") + f"\n  {line}\n"
    f = tmp_path / "Pulumi.ops.yaml"
    f.write_text(text)
    code, out, err = run(capsys, "--stack", "ops", "--config", str(f))
    n = len(text.splitlines())
    assert code == 2 and f"{f}:{n}: {words}" in err and "Example: " in err and "Traceback" not in err
    assert out == ""
