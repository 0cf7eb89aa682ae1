"""Config validation: defaults, derived values, and the table of bad configurations."""

from __future__ import annotations

import pytest
from conftest import COMPARTMENT, ROOT, full_keys, good_raw, make_ssh_public_key
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from components.config import (
    DEFAULTS,
    DESCRIPTIONS,
    EXAMPLES,
    PLACEHOLDERS,
    REQUIRED,
    SETTINGS,
    ConfigError,
    check_db_password,
    parse_config,
    pulumi_config_block,
    render_pulumi_config_yaml,
)
from labctl.cliconfig import CliConfigError, for_program
from labctl.offline import ProgramError, run_program


def rsa_pub(bits: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def test_defaults_of_a_minimal_config():
    cfg = parse_config(good_raw(), "dev")
    assert cfg.vcn_cidr == "10.0.0.0/16"
    assert (cfg.public_subnet_cidr, cfg.private_subnet_cidr) == ("10.0.0.0/24", "10.0.1.0/24")
    assert cfg.app_shape == "VM.Standard.E2.1.Micro" and cfg.app_ocpus is None
    assert (cfg.db_engine, cfg.db_shape, cfg.db_storage_gbs) == ("mysql", "MySQL.Free", 50)
    assert (cfg.db_admin_user, cfg.db_name, cfg.db_password) == ("admin", "lab", None)
    assert cfg.tags == {"project": "oci-dblab", "stack": "dev", "student": "a23-042"}
    assert cfg.name_prefix == "dblab-a23-042"
    assert cfg.warnings == ()


def test_flex_shape_defaults_and_subnets_derived_from_a_small_vcn():
    cfg = parse_config(good_raw(appShape="VM.Standard.A1.Flex", vcnCidr="192.168.10.0/26"), "dev")
    assert (cfg.app_ocpus, cfg.app_memory_gbs) == (1.0, 6.0)
    assert (cfg.public_subnet_cidr, cfg.private_subnet_cidr) == ("192.168.10.0/27", "192.168.10.32/27")


def test_open_admin_cidr_is_accepted_with_a_warning():
    cfg = parse_config(good_raw(adminCidr="0.0.0.0/0"), "dev")
    assert cfg.admin_cidr == "0.0.0.0/0"
    assert any("whole internet" in w for w in cfg.warnings)


def test_password_is_not_in_repr_and_needs_secret():
    cfg = parse_config(good_raw(dbPassword="Str0ng#Passw0rd"), "dev", secret_keys={"dbPassword"})
    assert cfg.db_password == "Str0ng#Passw0rd"
    assert "Str0ng#Passw0rd" not in repr(cfg)


def test_problems_are_collected_together():
    with pytest.raises(ConfigError) as e:
        parse_config(good_raw(compartmentId="nope", adminCidr="1.2.3.4/33", dbEngine="oracle"), "dev")
    keys = [p.key for p in e.value.problems]
    assert keys == ["compartmentId", "adminCidr", "dbEngine"]
    assert str(e.value).startswith("3 configuration problem(s) of stack 'dev'; nothing was created:")


def test_placeholders_are_refused_for_real_runs_and_warned_offline():
    raw = good_raw(**PLACEHOLDERS)
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "dev")
    assert sorted(p.key for p in e.value.problems) == sorted(PLACEHOLDERS)
    cfg = parse_config(raw, "dev", allow_placeholders=True)
    assert len([w for w in cfg.warnings if "example value" in w]) == 3


def test_every_key_has_a_description_and_an_example():
    assert set(DESCRIPTIONS) == set(DEFAULTS) == set(EXAMPLES)


def test_password_rule_messages_never_hold_the_password():
    why = check_db_password("abcdefgh", "admin")
    assert why is not None and "abcdefgh" not in why
    assert "no digit" in why and "no uppercase" in why and "no special" in why
    assert check_db_password("Lab-2026-db!", "admin") is None


# (overrides, secret keys, key named in the message, words the message must hold)
BAD = [
    ({"compartmentId": None}, (), "compartmentId", "is required"),
    ({"sshPublicKey": None}, (), "sshPublicKey", "is required"),
    ({"adminCidr": None}, (), "adminCidr", "is required"),
    ({"compartmentId": "my-compartment"}, (), "compartmentId", "is not an OCID"),
    (
        {"compartmentId": "ocid1.instance.oc1.phx.aaaaaaaa7kq2m4n6p8r2s4t6v8x2z4b6"},
        (),
        "compartmentId",
        "OCID of a instance",
    ),
    ({"compartmentId": "ocid1.compartment.oc1..short"}, (), "compartmentId", "is not an OCID"),
    ({"sshPublicKey": "ssh-ed25519 AAAAnotbase64!!"}, (), "sshPublicKey", "not a valid OpenSSH public key"),
    ({"sshPublicKey": "-----BEGIN OPENSSH PRIVATE KEY-----"}, (), "sshPublicKey", "PRIVATE key"),
    ({"sshPublicKey": "ssh-dss AAAAB3NzaC1kc3MAAACBAP"}, (), "sshPublicKey", "not with one of"),
    ({"sshPublicKey": rsa_pub(1024)}, (), "sshPublicKey", "RSA key of 1024 bits"),
    ({"adminCidr": "203.0.113.7/24"}, (), "adminCidr", "host bits set"),
    ({"adminCidr": "my laptop"}, (), "adminCidr", "not an IPv4 CIDR"),
    ({"adminCidr": "2001:db8::/64"}, (), "adminCidr", "is IPv6"),
    ({"vcnCidr": "10.0.0.0/8"}, (), "vcnCidr", "is too large"),
    ({"vcnCidr": "10.0.0.0/30"}, (), "vcnCidr", "too small to hold two subnets"),
    ({"vcnCidr": "8.8.0.0/16"}, (), "vcnCidr", "RFC 1918"),
    ({"publicSubnetCidr": "10.1.0.0/24"}, (), "publicSubnetCidr", "is not inside vcnCidr"),
    ({"privateSubnetCidr": "10.0.0.128/25"}, (), "privateSubnetCidr", "overlaps publicSubnetCidr"),
    ({"privateSubnetCidr": "10.0.1.0/31"}, (), "privateSubnetCidr", "too small"),
    ({"appShape": "BM.Standard.E4.128"}, (), "appShape", "not a VM shape"),
    ({"appShape": "VM.Banana.Flex"}, (), "appShape", "not a VM shape"),
    ({"appOcpus": "2"}, (), "appOcpus", "only applies to Flex shapes"),
    ({"appShape": "VM.Standard.A1.Flex", "appOcpus": "0"}, (), "appOcpus", "out of range"),
    ({"appShape": "VM.Standard.A1.Flex", "appOcpus": "2", "appMemoryGbs": "200"}, (), "appMemoryGbs", "does not fit"),
    ({"appImageId": "ubuntu-22.04"}, (), "appImageId", "is not an OCID"),
    ({"dbEngine": "oracle"}, (), "dbEngine", "not a known engine"),
    ({"dbEngine": "nosql"}, (), "dbEngine", "planned but not built yet"),
    ({"dbShape": "VM.Standard.E2.1.Micro"}, (), "dbShape", "not a mysql shape"),
    ({"dbStorageGbs": "100"}, (), "dbStorageGbs", "exactly 50 GB"),
    ({"dbShape": "MySQL.2", "dbStorageGbs": "20"}, (), "dbStorageGbs", "out of range"),
    ({"dbStorageGbs": "lots"}, (), "dbStorageGbs", "not a whole number"),
    ({"dbAdminUser": "root"}, (), "dbAdminUser", "is reserved"),
    ({"dbAdminUser": "administrator"}, (), "dbAdminUser", "is reserved"),
    ({"dbAdminUser": "1admin"}, (), "dbAdminUser", "must start with a letter"),
    ({"dbPassword": "Sh0rt!"}, ("dbPassword",), "dbPassword", "6 characters"),
    ({"dbPassword": "alllowercase1!"}, ("dbPassword",), "dbPassword", "no uppercase"),
    ({"dbPassword": "NoDigitsHere!!"}, ("dbPassword",), "dbPassword", "no digit"),
    ({"dbPassword": "NoSpecial1234"}, ("dbPassword",), "dbPassword", "no special"),
    ({"dbPassword": "Adm1n#admin2026"}, ("dbPassword",), "dbPassword", "contains the admin user name"),
    ({"dbPassword": "Str0ng#Passw0rd"}, (), "dbPassword", "plain text"),
    ({"dbName": "mysql"}, (), "dbName", "system schema"),
    ({"dbName": "lab-db"}, (), "dbName", "must start with a letter"),
    ({"dbAppUser": "admin"}, (), "dbAppUser", "separate, unprivileged user"),
    ({"dbBackupRetentionDays": "90"}, (), "dbBackupRetentionDays", "out of range"),
    ({"dbBackupRetentionDays": "7"}, (), "dbBackupRetentionDays", "OCI refuses a backup policy for an Always Free"),
    ({"connectionCheck": "yes"}, (), "connectionCheck", "not a boolean"),
    ({"checkTimeoutSeconds": "6_00"}, (), "checkTimeoutSeconds", "not a whole number"),
    ({"availabilityDomain": "AD-1"}, (), "availabilityDomain", "not an availability domain name"),
    ({"availabilityDomain": "Uocm:ap-singapore-1-ad-1"}, (), "availabilityDomain", "not an availability domain"),
    ({"dbDeletionProtection": "maybe"}, (), "dbDeletionProtection", "not a boolean"),
    ({"studentId": "Student 42"}, (), "studentId", "lowercase letters"),
    ({"checkTimeoutSeconds": "5"}, (), "checkTimeoutSeconds", "out of range"),
    ({"sshPrivateKeyPath": "~/.ssh/id_ed25519.pub"}, (), "sshPrivateKeyPath", "is a public key"),
    ({"adminCIDR": "1.2.3.4/32"}, (), "adminCIDR", "did you mean adminCidr"),
]


@pytest.mark.parametrize(("overrides", "secret", "key", "words"), BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_bad_config_fails_with_one_clear_message_and_declares_nothing(overrides, secret, key, words):
    raw = good_raw(**overrides)
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "dev", secret_keys=set(secret))
    mine = [p for p in e.value.problems if p.key == key]
    assert len(mine) == 1, [str(p) for p in e.value.problems]
    message = str(mine[0])
    assert message.startswith(f"oci-dblab:{key}: ") and words in message
    if key in EXAMPLES:
        assert f"Example: {EXAMPLES[key]}" in message
    if "dbPassword" in overrides:
        assert overrides["dbPassword"] not in str(e.value)

    # The real program, run the way Pulumi runs it, stops before declaring any resource: either the CLI refuses
    # the stack first (a missing key, a value not of the declared type), or our validation does.
    full, secret_full = full_keys(raw), [f"oci-dblab:{k}" for k in secret]
    try:
        for_program(full, secret_full, "dev", ROOT)
    except CliConfigError as cli:
        message = str(cli)
        assert f"'{key}'" in message and "Stack 'dev'" in message
    with pytest.raises(ProgramError) as run:
        run_program(full, secret_keys=secret_full)
    assert message in str(run.value)
    assert run.value.resources == []


def test_bad_table_is_large_enough():
    assert len(BAD) >= 30


def test_ssh_key_with_several_lines_is_accepted():
    two = make_ssh_public_key("a") + "\n" + make_ssh_public_key("b") + "\n"
    cfg = parse_config(good_raw(sshPublicKey=two), "dev")
    assert cfg.ssh_public_key.count("\n") == 1


def test_tenancy_ocid_is_accepted():
    tenancy = COMPARTMENT.replace("compartment", "tenancy")
    assert parse_config(good_raw(compartmentId=tenancy), "dev").compartment_id == tenancy


def test_pulumi_yaml_config_block_is_the_schema():
    import yaml

    text = (ROOT / "Pulumi.yaml").read_text()
    project = yaml.safe_load(text)
    assert project["name"] == "oci-dblab" and project["runtime"]["name"] == "python"
    assert project["config"] == pulumi_config_block()
    assert text.endswith("\n" + render_pulumi_config_yaml())  # as `python -m components.config` writes it
    # only the three values nobody can guess are required; no key is `secret: true` (it could have no default)
    assert [k for k, spec in project["config"].items() if "default" not in spec] == list(REQUIRED)
    assert REQUIRED == ("compartmentId", "sshPublicKey", "adminCidr")
    assert not any(spec.get("secret") for spec in project["config"].values())
    for key, spec in project["config"].items():
        assert spec["type"] in ("string", "integer", "boolean") and spec["description"] == DESCRIPTIONS[key]


def test_every_default_parses_to_what_its_description_says():
    merged = {k: v for k, v in DEFAULTS.items() if v is not None}  # what the CLI gives the program
    cfg = parse_config(merged | good_raw(), "dev")
    assert cfg == parse_config(good_raw(), "dev")
    assert cfg.db_backup_retention_days is None and cfg.db_deletion_protection is False
    assert cfg.availability_domain is None and cfg.app_image_id is None and cfg.ssh_private_key_path is None
    assert cfg.db_shape == "MySQL.Free" and cfg.warnings == ()


def test_retention_and_protection_on_a_paid_shape():
    cfg = parse_config(good_raw(dbShape="MySQL.2", dbBackupRetentionDays="14", dbDeletionProtection="true"), "dev")
    assert (cfg.db_backup_retention_days, cfg.db_deletion_protection) == (14, True)
    assert parse_config(good_raw(dbShape="MySQL.2"), "dev").db_backup_retention_days is None


def test_availability_domain_is_kept():
    for ad in ("Uocm:AP-SINGAPORE-1-AD-1", "Uocm:PHX-AD-1", "tbGS:AP-SYDNEY-1-AD-1"):
        assert parse_config(good_raw(availabilityDomain=ad), "dev").availability_domain == ad


def test_offline_stand_ins_for_encrypted_values_are_valid_and_not_placeholders():
    from components.config import offline_secret_value

    raw = {k: offline_secret_value(f"oci-dblab:{k}") for k in ("compartmentId", "sshPublicKey", "adminCidr")}
    cfg = parse_config(raw | {"dbPassword": offline_secret_value("oci-dblab:dbPassword")}, "dev", {"dbPassword"})
    assert cfg.warnings == () and cfg.db_password is not None


def test_warnings_never_show_a_secret_value():
    cfg = parse_config(good_raw(adminCidr="10.20.30.40/32"), "dev", secret_keys={"adminCidr"})
    assert any("private (RFC 1918) range" in w for w in cfg.warnings)
    assert not any("10.20.30.40" in w for w in cfg.warnings)


# (key, secret value, what the message must say): an error about a secret never shows the value or its parts
SECRET_BAD = [
    ("adminCidr", "198.51.100.77/24", "host bits set", ("198.51.100.77", "198.51.100.0")),
    ("adminCidr", "my-home-ip", "not an IPv4 CIDR", ("my-home-ip",)),
    ("compartmentId", "ocid1.instance.oc1.phx.aaaaaaaa7kq2m4n6p8r2s4t6v8x2z4b6", "OCID of a instance", ("7kq2m4n6",)),
    ("vcnCidr", "10.9.8.7/16", "host bits set", ("10.9.8.7", "10.9.0.0")),
    ("availabilityDomain", "secret-ad-name", "not an availability domain", ("secret-ad-name",)),
    ("checkTimeoutSeconds", "99999", "out of range", ("99999",)),
    ("sshPublicKey", "hunter2-not-a-key", "does not start with one of", ("hunter2",)),
]


@pytest.mark.parametrize(("key", "value", "words", "hidden"), SECRET_BAD, ids=[b[0] for b in SECRET_BAD])
def test_errors_about_secret_values_name_the_key_never_the_value(key, value, words, hidden):
    with pytest.raises(ConfigError) as e:
        parse_config(good_raw(**{key: value}), "dev", secret_keys={key})
    [problem] = [p for p in e.value.problems if p.key == key]
    assert words in str(problem) and str(problem).startswith(f"oci-dblab:{key}: ")
    for part in hidden:
        assert part not in str(e.value)
    # the same value in plain text is shown (it is not secret)
    with pytest.raises(ConfigError) as plain:
        parse_config(good_raw(**{key: value}), "dev")
    if key not in ("sshPublicKey", "checkTimeoutSeconds"):
        assert value.split("/")[0] in str(plain.value)
    # and through the program as Pulumi runs it (PULUMI_CONFIG_SECRET_KEYS): nothing leaks either
    with pytest.raises(ProgramError) as run:
        run_program(full_keys(good_raw(**{key: value})), secret_keys=[f"oci-dblab:{key}"])
    for part in hidden:
        assert part not in str(run.value)


# Values the Pulumi CLI refuses for a declared integer or boolean key (project.go ValidateConfigValue). labctl class
# validate and preflight check students with parse_config alone, so it must refuse each of them too.
CLI_REFUSED = {
    "integer": ["", " 50", "50 ", "5_0", "0x32", "1.5", "5e1", "fifty", "50\n", "１２"],
    "boolean": ["", "True", "TRUE", "yes", "no", "1", "0", "on", " true", "false\n"],
}


def test_parse_config_refuses_every_value_the_cli_type_check_refuses():
    from labctl.cliconfig import validate_value

    for s in SETTINGS:
        if s.type not in CLI_REFUSED:
            continue
        for value in CLI_REFUSED[s.type]:
            assert not validate_value(s.type, None, value), (s.key, value)
            with pytest.raises(ConfigError) as e:
                parse_config(good_raw(**{s.key: value}), "dev")
            assert s.key in [p.key for p in e.value.problems], (s.key, value)
        assert validate_value(s.type, None, s.default_text)


@pytest.mark.parametrize(
    "engine, shape, example",
    [
        ("postgresql-vm", "VM.Standard.E4.Flex", "VM.Standard.E2.1.Micro"),
        ("mysql", "VM.Standard.E2.1.Micro", "MySQL.Free"),
        ("postgresql", "MySQL.2", "PostgreSQL."),
    ],
)
def test_a_bad_db_shape_gets_an_example_of_its_own_engine(engine, shape, example):
    with pytest.raises(ConfigError) as e:
        parse_config(good_raw(dbEngine=engine, dbShape=shape), "dev")
    (line,) = [ln for ln in str(e.value).splitlines() if "oci-dblab:dbShape" in ln]
    assert f"Example: {example}" in line
    if engine != "mysql":
        assert "MySQL.Free" not in line
