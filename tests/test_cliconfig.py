"""The CLI-faithful config loader: Pulumi.yaml + Pulumi.<stack>.yaml merged and checked as `pulumi up` does."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import COMPARTMENT, ROOT, SSH_PUB

from components.config import SETTINGS, parse_config
from labctl.cli import main
from labctl.cliconfig import (
    CliConfigError,
    backend_url,
    file_backend_dir,
    for_program,
    format_missing_keys,
    load_project,
    load_stack,
    read_stack_file,
)
from labctl.offline import ProgramError, run_program
from labctl.stackfile import SECRET_PLACEHOLDER, StackFileError

THREE = {
    "oci-dblab:compartmentId": COMPARTMENT,
    "oci-dblab:sshPublicKey": SSH_PUB,
    "oci-dblab:adminCidr": "198.51.100.23/32",
}
EXAMPLE_STACKS = sorted((ROOT / "examples").glob("Pulumi.*.yaml"))


def stack_yaml(tmp_path: Path, body: str, name: str = "Pulumi.dev.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def minimal(tmp_path: Path, extra: str = "") -> Path:
    lines = "".join(f"  {k}: {v}\n" for k, v in THREE.items())
    return stack_yaml(tmp_path, "config:\n" + lines + textwrap.indent(textwrap.dedent(extra), "  "))


def project(tmp_path: Path, config: str) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: demo\nruntime: python\nconfig:\n" + textwrap.indent(config, "  "))
    return tmp_path


# --- the loader's table ------------------------------------------------------------------------------------------
def test_missing_required_keys_are_refused_in_pulumis_words(tmp_path):
    path = stack_yaml(tmp_path, "config:\n  oci-dblab:compartmentId: x\n")
    with pytest.raises(CliConfigError) as e:
        load_stack("dev", ROOT, path)
    assert "Stack 'dev' is missing configuration values 'adminCidr' and 'sshPublicKey'" in str(e.value)
    assert str(path) in str(e.value)
    path = stack_yaml(tmp_path, "config:\n  oci-dblab:compartmentId: x\n  oci-dblab:adminCidr: 1.2.3.4/32\n")
    with pytest.raises(CliConfigError, match="is missing configuration value 'sshPublicKey'"):
        load_stack("dev", ROOT, path)


def test_missing_keys_are_listed_like_format_missing_keys():
    assert format_missing_keys(["b"]) == "'b'"
    assert format_missing_keys(["c", "a"]) == "'a' and 'c'"
    assert format_missing_keys(["world", "hello", "values"]) == "'hello', 'values' and 'world'"


# (line in the stack file, declared type named in the error): the CLI refuses each before the program starts
WRONG_TYPES = [
    ("oci-dblab:dbStorageGbs: lots", "integer"),
    ("oci-dblab:dbStorageGbs: 1.5", "integer"),
    ('oci-dblab:checkTimeoutSeconds: " 600"', "integer"),
    ('oci-dblab:checkTimeoutSeconds: "6_00"', "integer"),
    ('oci-dblab:connectionCheck: "yes"', "boolean"),
    ('oci-dblab:dbDeletionProtection: "True"', "boolean"),
    ("oci-dblab:vcnCidr: [10.0.0.0/16]", "string"),
    ("oci-dblab:vcnCidr: {ip: 10.0.0.0}", "string"),
]


@pytest.mark.parametrize(("line", "type_name"), WRONG_TYPES, ids=[w[0].split(":")[1] for w in WRONG_TYPES])
def test_a_value_not_of_the_declared_type_is_refused(tmp_path, line, type_name):
    path = minimal(tmp_path, line + "\n")
    key = line.split(":")[1]
    with pytest.raises(CliConfigError) as e:
        load_stack("dev", ROOT, path)
    assert f"Stack 'dev' with configuration key '{key}' must be of type '{type_name}'" in str(e.value)
    assert "line 5:" in str(e.value)  # the line of the key in the stack file
    value = line.split(": ", 1)[1].strip('"')
    assert value not in str(e.value).replace(f"'{type_name}'", "")


def test_values_of_the_declared_type_pass_and_reach_the_program_as_the_cli_formats_them(tmp_path):
    path = minimal(
        tmp_path,
        """\
        oci-dblab:dbStorageGbs: 0o62
        oci-dblab:checkTimeoutSeconds: "+600"
        oci-dblab:connectionCheck: False
        oci-dblab:dbDeletionProtection: "false"
        oci-dblab:studentId: "010"
        oci:region: ap-singapore-1
        """,
    )
    merged = load_stack("dev", ROOT, path)
    v = merged.values
    assert v["oci-dblab:dbStorageGbs"] == "50"  # an octal YAML int, as Go's encoding/json writes it
    assert v["oci-dblab:checkTimeoutSeconds"] == "+600"  # a string that strconv.Atoi accepts stays as written
    assert v["oci-dblab:connectionCheck"] == "false" and v["oci-dblab:dbDeletionProtection"] == "false"
    assert v["oci-dblab:studentId"] == "010" and v["oci:region"] == "ap-singapore-1"


def test_an_array_type_is_checked_item_by_item(tmp_path):
    proj = project(tmp_path, "ports:\n  type: array\n  items:\n    type: integer\n  default: [22]\n")
    assert load_stack("dev", proj, stack_yaml(tmp_path, "config: {}\n")).values["demo:ports"] == "[22]"
    ok = stack_yaml(tmp_path, "config:\n  demo:ports: [22, 3306]\n")
    assert load_stack("dev", proj, ok).values["demo:ports"] == "[22,3306]"
    bad = stack_yaml(tmp_path, "config:\n  demo:ports: [22, ssh]\n")
    with pytest.raises(CliConfigError, match=r"key 'ports' must be of type 'array<integer>'"):
        load_stack("dev", proj, bad)
    scalar = stack_yaml(tmp_path, "config:\n  demo:ports: 22\n")
    with pytest.raises(CliConfigError, match=r"must be of type 'array<integer>'"):
        load_stack("dev", proj, scalar)


def test_a_secret_declared_key_must_be_encrypted(tmp_path):
    proj = project(tmp_path, "token:\n  type: string\n  secret: true\n")
    plain = stack_yaml(tmp_path, "config:\n  demo:token: s3cr3t-value\n")
    with pytest.raises(CliConfigError) as e:
        load_stack("dev", proj, plain)
    assert "Stack 'dev' with configuration key 'token' must be encrypted as it's secret" in str(e.value)
    assert "s3cr3t-value" not in str(e.value)
    encrypted = stack_yaml(tmp_path, "config:\n  demo:token:\n    secure: v1:abc:def\n")
    merged = load_stack("dev", proj, encrypted)
    assert merged.values["demo:token"] == SECRET_PLACEHOLDER and merged.secret_keys == ("demo:token",)
    # a secret key with a default: the CLI writes the default in plain text and then refuses it (no default
    # can satisfy it), which is why Pulumi.yaml declares no key `secret: true`
    proj = project(tmp_path, 'token:\n  type: string\n  secret: true\n  default: ""\n')
    with pytest.raises(CliConfigError, match="must be encrypted as it's secret"):
        load_stack("dev", proj, stack_yaml(tmp_path, "config: {}\n"))


def test_project_defaults_are_applied_and_stack_values_win(tmp_path):
    merged = load_stack("dev", ROOT, minimal(tmp_path, "oci-dblab:vcnCidr: 192.168.10.0/24\n"))
    v = merged.values
    for s in SETTINGS:
        full = f"oci-dblab:{s.key}"
        if not s.required and s.key != "vcnCidr":
            assert v[full] == s.default_text and full in merged.defaults_applied, s.key
    assert v["oci-dblab:dbStorageGbs"] == "50" and v["oci-dblab:dbBackupRetentionDays"] == "0"
    assert v["oci-dblab:connectionCheck"] == "true" and v["oci-dblab:publicSubnetCidr"] == ""
    assert v["oci-dblab:vcnCidr"] == "192.168.10.0/24" and "oci-dblab:vcnCidr" not in merged.defaults_applied
    cfg = parse_config(merged.short(), "dev", merged.short_secret_keys())
    assert (cfg.vcn_cidr, cfg.public_subnet_cidr) == ("192.168.10.0/24", "192.168.10.0/25")


def test_an_empty_stack_value_counts_as_set_like_the_cli(tmp_path):
    # mergeConfig only fills keys the stack does not have: "" given on the stack is kept, not replaced
    merged = load_stack("dev", ROOT, minimal(tmp_path, 'oci-dblab:vcnCidr: ""\n'))
    assert merged.values["oci-dblab:vcnCidr"] == ""


def test_secure_values_are_never_decrypted_and_never_type_checked(tmp_path):
    path = minimal(tmp_path, "oci-dblab:dbPassword:\n  secure: v1:c2FsdA==:Y2lwaGVy\n")
    merged = load_stack("dev", ROOT, path)
    assert merged.values["oci-dblab:dbPassword"] == SECRET_PLACEHOLDER
    assert merged.secret_keys == ("oci-dblab:dbPassword",)


def test_stack_file_errors_name_the_file_and_line(tmp_path):
    path = stack_yaml(tmp_path, "config:\n  oci-dblab:adminCidr: 1.2.3.4/32\n  adminCidr: 1.2.3.4/32\n")
    with pytest.raises(CliConfigError) as e:
        read_stack_file(path)
    assert f"{path}: line 3: could not parse adminCidr as a configuration key" in str(e.value)
    broken = stack_yaml(tmp_path, "config:\n  a: [1, 2\n")
    with pytest.raises(StackFileError, match=rf"{broken}:\d+: is not valid YAML"):
        read_stack_file(broken)
    with pytest.raises(StackFileError, match="no such file"):
        read_stack_file(tmp_path / "Pulumi.nope.yaml")


def test_plain_values_yaml_readers_disagree_on_must_be_quoted(tmp_path):
    # yaml.v3 (the CLI) reads plain `yes` as text, PyYAML as true, and 010 as 8: refused with a hint to quote
    for line, words in (("oci-dblab:connectionCheck: yes", "quote it"), ("oci-dblab:studentId: 010", "octal")):
        with pytest.raises(StackFileError, match=words):
            load_stack("dev", ROOT, minimal(tmp_path, line + "\n"))


def test_project_file_is_checked_like_project_validate(tmp_path):
    cases = [
        ("size:\n  type: integer\n  default: big\n", "The default value specified for configuration key 'size'"),
        ("tags:\n  type: array\n", "declares an array but does not specify the underlying type"),
        ("aws:region:\n  type: string\n", "is not namespaced by the project and should not define a type"),
        ("aws:region:\n  default: x\n", "should not define a default value"),
        ("x:\n  default: 1\n  value: 2\n", "cannot have both a 'default' and 'value' attribute"),
        ("x:\n  typo: string\n", "unknown attribute(s) typo"),
    ]
    for body, words in cases:
        with pytest.raises(CliConfigError) as e:
            load_project(project(tmp_path, body))
        assert words in str(e.value) and "Pulumi.yaml: line 4:" in str(e.value), body


def test_shorthand_project_values(tmp_path):
    proj = project(tmp_path, "size: 3\naws:region: us-east-1\n")
    merged = load_stack("dev", proj, stack_yaml(tmp_path, "config: {}\n"))
    assert merged.values == {"demo:size": "3", "aws:region": "us-east-1"}


# --- the shipped project, stack and examples --------------------------------------------------------------------
def test_shipped_pulumi_yaml_passes_the_clis_checks_and_selects_the_file_backend():
    proj = load_project(ROOT)
    assert proj.name == "oci-dblab" and proj.backend_url == "file://.pulumi-state"
    assert set(proj.config) == {s.key for s in SETTINGS}


@pytest.mark.parametrize(
    "path",
    [ROOT / "Pulumi.dev.yaml", *EXAMPLE_STACKS],
    ids=lambda p: str(Path(p).relative_to(ROOT)),
)
def test_shipped_and_example_stacks_load_and_plan(path, capsys):
    stack = Path(path).name.split(".")[1]
    merged = load_stack(stack, ROOT, path)
    parse_config(merged.short(), stack, merged.short_secret_keys(), allow_placeholders=True)
    assert main(["plan", "--stack", stack, "--config", str(path)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("PLAN OK")


def test_examples_include_a_minimal_stack():
    assert ROOT / "examples" / "Pulumi.minimal.yaml" in EXAMPLE_STACKS
    merged = load_stack("minimal", ROOT, ROOT / "examples" / "Pulumi.minimal.yaml")
    assert {k for k in merged.values if k not in merged.defaults_applied} == set(THREE)


def test_minimal_stack_with_only_the_three_values_loads_and_plans(tmp_path, capsys):
    path = minimal(tmp_path)
    merged = load_stack("dev", ROOT, path)
    cfg = parse_config(merged.short(), "dev", merged.short_secret_keys())
    assert cfg.db_shape == "MySQL.Free" and cfg.db_backup_retention_days is None and cfg.warnings == ()
    assert main(["plan", "--config", str(path)]) == 0
    assert "PLAN OK" in capsys.readouterr().out


def test_labctl_plan_refuses_what_the_cli_refuses(tmp_path, capsys):
    path = stack_yaml(tmp_path, "config:\n  oci-dblab:compartmentId: x\n")
    assert main(["plan", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Stack 'dev' is missing configuration values 'adminCidr' and 'sshPublicKey'" in err
    assert "Traceback" not in err


def test_every_program_run_goes_through_the_loader():
    # run_program (tests, labctl class --offline, labctl diff) merges and checks like the CLI first
    with pytest.raises(ProgramError) as e:
        run_program({"oci-dblab:compartmentId": COMPARTMENT})
    assert "Stack 'dev' is missing configuration values 'adminCidr' and 'sshPublicKey'" in str(e.value)
    assert e.value.resources == []
    merged = for_program(THREE, [], "dev", ROOT)
    assert merged.values["oci-dblab:appShape"] == "VM.Standard.E2.1.Micro"
    with pytest.raises(ProgramError, match="'connectionCheck' must be of type 'boolean'"):
        run_program(THREE | {"oci-dblab:connectionCheck": "yes"})


# --- the state backend for every pulumi command typed by hand ----------------------------------------------------
def test_the_project_file_selects_the_state_folder_for_every_command(tmp_path):
    proj = load_project(ROOT)
    assert backend_url(proj, {}, stored="https://api.pulumi.com") == ("file://.pulumi-state", "project")
    assert backend_url(proj, {"PULUMI_BACKEND_URL": "s3://x"}) == ("s3://x", "env")  # the env var wins
    assert file_backend_dir("file://.pulumi-state", ROOT) == ROOT / ".pulumi-state"
    assert file_backend_dir("file://~/state?no_tmp_dir=true", "/elsewhere", home=tmp_path) == tmp_path / "state"
    assert file_backend_dir("file:///srv/state", ROOT) == Path("/srv/state")


def test_the_state_folder_ships_and_its_contents_are_never_committed():
    import subprocess

    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", ".pulumi-state"], capture_output=True, text=True)
    assert tracked.stdout.split() == [".pulumi-state/README.md"]  # the folder exists after a clone
    state = ".pulumi-state/.pulumi/stacks/oci-dblab/dev.json"
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", state])
    assert ignored.returncode == 0


def test_make_uses_the_project_backend_and_refuses_one_pointing_elsewhere():
    import os
    import subprocess

    makefile = (ROOT / "Makefile").read_text()
    assert "export PULUMI_BACKEND_URL" not in makefile and "PULUMI_BACKEND_URL ?=" not in makefile
    env = {k: v for k, v in os.environ.items() if k not in ("PULUMI_BACKEND_URL", "MAKEFLAGS", "MFLAGS")}
    ok = subprocess.run(["make", "-s", "-C", str(ROOT), "backend-check"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "backend-check"],
        env=env | {"PULUMI_BACKEND_URL": "https://api.pulumi.com"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "unset PULUMI_BACKEND_URL" in bad.stdout


def test_readme_quick_start_runs_in_the_order_the_cli_needs():
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quick start, command by command", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [ln.split("#")[0].strip() for ln in block.splitlines() if ln.strip()]
    order = [
        "git clone",  # no make: Pulumi's pip toolchain builds .venv from requirements.txt (tests/test_toolchain.py)
        "export PULUMI_CONFIG_PASSPHRASE=",
        "pulumi stack init dev --secrets-provider passphrase",
        "pulumi config set compartmentId",
        "pulumi config set sshPublicKey",
        "pulumi config set adminCidr",
        "pulumi preview",
        "pulumi up",
    ]
    positions = [next(i for i, c in enumerate(commands) if c.startswith(want)) for want in order]
    assert positions == sorted(positions)
    # no command names another backend or stack file: Pulumi.yaml's backend applies to each of them
    assert not any("login" in c or "--cwd" in c or "PULUMI_BACKEND_URL" in c for c in commands)
    # the three values the quick start sets are exactly the required keys
    set_keys = {c.split()[3] for c in commands if c.startswith("pulumi config set ") and ":" not in c.split()[3]}
    assert set_keys == {s.key for s in SETTINGS if s.required}


def test_ci_previews_set_the_backend_in_the_environment_since_pulumi_yaml_wins_over_login():
    import yaml

    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        for name, job in (doc.get("jobs") or {}).items():
            uses_pulumi = any("pulumi/actions" in str(step.get("uses", "")) for step in job.get("steps", []))
            logs_in = any("cloud-url" in (step.get("with") or {}) for step in job.get("steps", []))
            if uses_pulumi and logs_in:
                assert job["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}", (path.name, name)
