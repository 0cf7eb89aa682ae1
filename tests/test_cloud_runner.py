"""The cloud runner before any stack starts: its tools (Pulumi CLI, OCI config and profiles), and per-student
tenancies (roster oci_profile/region → each stack's OCI provider config)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import COMPARTMENT, instructor_yaml, make_ssh_public_key

from labctl.cli import main
from labctl.roster import RosterError, check_students, parse_class_config, parse_roster, student_config
from labctl.runners import StackJob, automation_args, check_cloud_tools

PROFILE = (
    "[{name}]\nuser=ocid1.user.oc1..aaaa\nfingerprint=aa:bb\ntenancy=ocid1.tenancy.oc1..aaaa\n"
    "region={region}\nkey_file={key}\n"
)


def fake_tools(tmp: Path, profiles: dict[str, str], pulumi: str | None = "echo v3.272.0") -> dict[str, str]:
    """A PATH with a stand-in `pulumi` and an OCI config file with ``profiles`` (name -> region)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    if pulumi is not None:
        exe = bin_dir / "pulumi"
        exe.write_text(f"#!/bin/sh\n{pulumi}\n")
        exe.chmod(0o755)
    key = tmp / "api_key.pem"
    key.write_text("not read by the check, only its presence\n")
    cfg = tmp / "oci_config"
    cfg.write_text("".join(PROFILE.format(name=n, region=r, key=key) for n, r in profiles.items()))
    return {"PATH": str(bin_dir), "OCI_CLI_CONFIG_FILE": str(cfg), "HOME": str(tmp)}


def test_tools_present(tmp_path):
    problems, version = check_cloud_tools(
        ["SITI", "BUDI"], fake_tools(tmp_path, {"SITI": "ap-singapore-2", "BUDI": "x"})
    )
    assert problems == [] and version == "v3.272.0"


@pytest.mark.parametrize(
    "setup,profiles,words",
    [
        (lambda t: fake_tools(t, {"DEFAULT": "r"}, pulumi=None), [], "the Pulumi CLI is not on PATH"),
        (lambda t: fake_tools(t, {"DEFAULT": "r"}, pulumi="echo oops; exit 3"), [], "did not answer with a version"),
        (lambda t: {**fake_tools(t, {}), "OCI_CLI_CONFIG_FILE": str(t / "none")}, [], "no OCI config file"),
        (lambda t: fake_tools(t, {"SITI": "r"}), ["SITY"], "profile [SITY] is not in"),
        (lambda t: fake_tools(t, {"SITI": "r"}), ["SITY"], "did you mean SITI?"),
        (lambda t: fake_tools(t, {"DEFAULT": ""}), [], "lacks region"),
    ],
    ids=["no-cli", "cli-broken", "no-config", "no-profile", "profile-typo", "profile-incomplete"],
)
def test_tool_problems(tmp_path, setup, profiles, words):
    problems, _ = check_cloud_tools(profiles, setup(tmp_path))
    assert any(words in p for p in problems), problems


def test_unreadable_key_file(tmp_path):
    env = fake_tools(tmp_path, {"DEFAULT": "r"})
    (tmp_path / "api_key.pem").unlink()
    problems, _ = check_cloud_tools([], env)
    config, key = tmp_path / "oci_config", tmp_path / "api_key.pem"
    assert problems == [f"profile [DEFAULT] in {config}: key_file {key} is missing or not readable"]


KEYS = [make_ssh_public_key(f"s{i}") for i in range(3)]
HEADER = "student_id,name,email,ssh_public_key,admin_cidr,compartment_id,oci_profile,region"
COMPS = [COMPARTMENT[:-3] + f"a{i}b" for i in range(3)]


def per_student(rows: list[str]) -> tuple[list, object]:
    cls = parse_class_config(f"compartmentId: {COMPARTMENT}\ntenancies: per-student\n" + instructor_yaml())
    return parse_roster("\n".join([HEADER, *rows]) + "\n", "r.csv").students, cls


def test_per_student_tenancies_become_provider_config():
    students, cls = per_student(
        [
            f"s0,A,a@x.example.org,{KEYS[0]},81.2.0.1/32,{COMPS[0]},SITI,ap-singapore-2",
            f"s1,B,b@x.example.org,{KEYS[1]},81.2.0.2/32,{COMPS[1]},BUDI,",
        ]
    )
    check_students(students, cls, "r.csv")
    configs = []
    for s in students:
        config, secret = student_config(cls, s)
        configs.append(
            automation_args(StackJob(s.student_id, s.stack, config, tuple(secret), oci_profile=s.oci_profile))
        )
    assert configs[0].config["oci:configFileProfile"] == ("SITI", False)
    assert configs[0].config["oci:region"] == ("ap-singapore-2", False)  # the row's own region
    assert configs[1].config["oci:configFileProfile"] == ("BUDI", False)
    assert "oci:region" not in configs[1].config  # no class region: the profile's region applies
    assert configs[0].config["oci-dblab:compartmentId"] == (COMPS[0], False)


def test_per_student_rows_sharing_a_compartment_or_without_profile_are_refused():
    students, cls = per_student(
        [
            f"s0,A,a@x.example.org,{KEYS[0]},81.2.0.1/32,{COMPS[0]},SITI,",
            f"s1,B,b@x.example.org,{KEYS[1]},81.2.0.2/32,{COMPS[0]},BUDI,",
            f"s2,C,c@x.example.org,{KEYS[2]},81.2.0.3/32,,,",
        ]
    )
    with pytest.raises(RosterError) as e:
        check_students(students, cls, "r.csv")
    found = {(p.line, p.column): p.message for p in e.value.problems}
    assert "the same compartment as line 2" in found[(3, "compartment_id")]
    assert "is empty" in found[(4, "oci_profile")]
    assert (4, "compartment_id") not in found  # the class compartment is used once only


def test_preflight_counts_each_student_tenancy_on_its_own():
    from labctl.preflight import FITS, preflight

    students, cls = per_student(
        [f"s{i},N,n{i}@x.example.org,{KEYS[i]},81.2.0.{i + 1}/32,{COMPS[i]},P{i}," for i in range(3)]
    )
    report = preflight(students, cls)
    assert report.verdict == FITS and len(report.tenancies) == 3  # one MySQL.Free each


def test_cli_refuses_a_cloud_run_without_its_tools(tmp_path, capsys, monkeypatch):
    roster = tmp_path / "roster.csv"
    roster.write_text(f"student_id,name,email,ssh_public_key,admin_cidr\ns0,A,a@x.example.org,{KEYS[0]},81.2.0.1/32\n")
    cls = tmp_path / "class.yaml"
    cls.write_text(f"compartmentId: {COMPARTMENT}\n" + instructor_yaml(cidr="81.3.0.1/32"))
    for k, v in fake_tools(tmp_path, {"DEFAULT": "r"}, pulumi=None).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + "/nonexistent")
    assert main(["class", "up", str(roster), "--class-config", str(cls), "--out-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "the cloud runner cannot start; nothing was created" in err and "Pulumi CLI is not on PATH" in err
    assert not (tmp_path / "run").exists()
