"""labctl class usage: the period, the Usage API answer in its three spellings, the table/CSV, the budget flag, bad
inputs as one clear message (exit 2), and the real OCI SDK client against a loopback server standing in for OCI."""

from __future__ import annotations

import base64
import csv
import http.server
import json
import threading
from datetime import date
from pathlib import Path

import pytest
from conftest import COMPARTMENT, make_ssh_public_key

from labctl.cli import main
from labctl.usage import (
    UNTAGGED,
    CostItem,
    OciUsage,
    Period,
    UsageError,
    items_from_answer,
    parse_period,
    summarize,
    usage_request,
)

TODAY = date(2026, 11, 27)
NOV = Period(date(2026, 11, 1), date(2026, 12, 1), "2026-11")


def answer(*rows: tuple[str | None, str, float], spelling: str = "camel", namespace: str = "dblab") -> dict:
    """A Usage API UsageAggregation: rows of (student or None, service, cost)."""
    keys = {
        "camel": ("items", "computedAmount", "isForecast"),
        "snake": ("items", "computed_amount", "is_forecast"),
        "kebab": ("items", "computed-amount", "is-forecast"),
    }[spelling]
    items = []
    for student, service, cost in rows:
        tags = [{"namespace": namespace, "key": "student", "value": student}] if student else []
        items.append({"service": service, keys[1]: cost, "currency": "USD", "tags": tags, keys[2]: False})
    doc = {keys[0]: items}
    return {"data": doc} if spelling == "kebab" else doc


# --- the period --------------------------------------------------------------------------------------------------
def test_periods_months_and_ranges():
    oct_ = parse_period("2026-10", TODAY)
    assert (oct_.start, oct_.end, oct_.days, oct_.months) == (date(2026, 10, 1), date(2026, 11, 1), 31, 1.0)
    rng = parse_period("2026-09-16..2026-11-01", TODAY)
    assert rng.days == 46 and rng.months == pytest.approx(1.5)  # half of September (15/30) and all of October
    dec_to_jan = Period(date(2025, 12, 1), date(2026, 2, 1), "x")
    assert dec_to_jan.months == 2.0
    # the running month is cut at tomorrow: today's usage so far counts, the future does not
    nov = parse_period("2026-11", TODAY)
    assert nov.end == date(2026, 11, 28) and nov.months == pytest.approx(27 / 30)


@pytest.mark.parametrize(
    "text, words",
    [
        ("2026-13", "no month 13"),
        ("November", "not a month or a range"),
        ("2026-11-05..2026-11-05", "ends before it starts"),
        ("2026-11-31..2026-12-01", "start '2026-11-31' is not a date"),
        ("2026-12", "starts after today"),
    ],
)
def test_bad_periods_say_what_is_wrong_with_an_example(text, words):
    with pytest.raises(UsageError) as e:
        parse_period(text, TODAY)
    assert words in str(e.value)
    assert "Example" in str(e.value) or "no usage yet" in str(e.value)


# --- the answer --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["camel", "snake", "kebab"])
def test_the_answer_is_read_in_the_api_sdk_and_cli_spellings(spelling):
    doc = answer(("a1", "Compute", 1.25), (None, "Block Storage", 0.5), spelling=spelling)
    items = items_from_answer(doc, "dblab")
    assert items == [CostItem("a1", "Compute", 1.25, "USD"), CostItem(UNTAGGED, "Block Storage", 0.5, "USD")]


def test_forecasts_and_other_namespaces_are_not_this_class():
    doc = answer(("a1", "Compute", 2.0))
    doc["items"].append({**doc["items"][0], "isForecast": True, "computedAmount": 99})
    other = answer(("a1", "MySQL", 7.0), namespace="another-class")["items"]
    doc["items"] += other
    items = items_from_answer(doc, "dblab")
    assert [(i.student, i.amount) for i in items] == [("a1", 2.0), (UNTAGGED, 7.0)]


@pytest.mark.parametrize(
    "doc, words",
    [({"nothing": []}, "no 'items' list"), ({"items": [{"computedAmount": "lots"}]}, "is not a number")],
)
def test_a_malformed_answer_is_one_clear_error(doc, words):
    with pytest.raises(UsageError, match=words):
        items_from_answer(doc, "dblab", "usage.json")


# --- the table ---------------------------------------------------------------------------------------------------
class S:
    def __init__(self, sid: str) -> None:
        self.student_id, self.stack = sid, f"student-{sid}"


def test_summary_flags_only_students_over_their_budget_for_the_period():
    items = [
        CostItem("a1", "Compute", 6.0, "USD"),
        CostItem("a1", "MySQL", 9.0, "USD"),  # 15 > 10: over
        CostItem("a2", "Compute", 10.0, "USD"),  # exactly the budget: not over
        CostItem("zz", "Compute", 1.0, "USD"),  # a tag value nobody in the roster has
        CostItem(UNTAGGED, "Network", 0.3, "USD"),
    ]
    rep = summarize(items, [S("a1"), S("a2"), S("a3")], NOV, 10.0)
    by = {r.student: r for r in rep.rows}
    assert [r.student for r in rep.rows] == ["a1", "a2", "a3", "zz", UNTAGGED]
    assert (by["a1"].cost, by["a1"].over, by["a1"].services[0]) == (15.0, True, ("MySQL", 9.0))
    assert (by["a2"].over, by["a3"].cost, by["a3"].over) == (False, 0.0, False)
    assert by["zz"].budget is None and not by["zz"].over
    assert [r.student for r in rep.over] == ["a1"]
    assert any("not in the roster: zz" in w for w in rep.warnings)
    assert any("0.30 USD of cost carries no student tag" in w for w in rep.warnings)
    # two months: twice the budget
    two = summarize(items, [S("a1")], Period(date(2026, 9, 1), date(2026, 11, 1), "x"), 10.0)
    assert two.rows[0].budget == 20.0 and not two.rows[0].over


# --- the command -------------------------------------------------------------------------------------------------
@pytest.fixture
def class_dir(tmp_path: Path) -> Path:
    rows = ["student_id,name,email,ssh_public_key,admin_cidr"]
    for i in range(3):
        rows.append(f"a{i},Student {i},a{i}@student.example.ac.id,{make_ssh_public_key(f'u{i}')},198.51.100.{i + 1}/32")
    (tmp_path / "roster.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "class.yaml").write_text(
        f"compartmentId: {COMPARTMENT}\nregion: ap-singapore-1\nconfig: {{connectionCheck: false}}\n"
    )
    (tmp_path / "usage.json").write_text(json.dumps(answer(("a0", "Compute", 4.0), ("a1", "MySQL", 12.5))))
    return tmp_path


def usage(d: Path, *extra: str) -> int:
    return main(["class", "usage", str(d / "roster.csv"), "--class-config", str(d / "class.yaml"), *extra])


def test_cli_table_and_csv_from_the_fixture_with_the_over_budget_flag(class_dir, capsys):
    out_csv = class_dir / "usage.csv"
    rc = usage(class_dir, "--period", "2026-10", "--fixture", str(class_dir / "usage.json"), "--budget", "10")
    rc2 = usage(
        class_dir, "--period", "2026-10", "--fixture", str(class_dir / "usage.json"), "--budget", "10",
        "--csv", str(out_csv),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == rc2 == 0
    assert "offline fake: nothing read from OCI" in out and "OVER BUDGET" in out
    assert "1 over budget: a1" in out and "total 16.50 USD" in out
    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["student"], r["cost"], r["budget"], r["over_budget"]) for r in rows] == [
        ("a0", "4.00", "10.00", "no"),
        ("a1", "12.50", "10.00", "yes"),
        ("a2", "0.00", "10.00", "no"),
    ]
    assert rows[1]["share_of_budget"] == "125%" and rows[1]["top_services"] == "MySQL 12.50"
    assert sorted(p.name for p in class_dir.iterdir() if p.name.startswith(".")) == []  # no temp file left


TENANCY = "ocid1.tenancy.oc1..aaaaaaaa7kq2m4n6p8r2s4t6v8x2z4b6d8f2"


def with_layer(d: Path, budget: str = "10") -> None:
    text = (d / "class.yaml").read_text()
    (d / "class.yaml").write_text(
        text + f"classLayer:\n  name: dblab\n  tenancyId: {TENANCY}\n  monthlyBudgetUsd: {budget}\n"
    )


def test_budget_and_tag_namespace_come_from_the_class_layer(class_dir, capsys):
    with_layer(class_dir)
    out_csv = class_dir / "u.csv"
    rc = usage(class_dir, "--period", "2026-10", "--fixture", str(class_dir / "usage.json"), "--csv", str(out_csv))
    assert rc == 0
    rows = {r["student"]: r for r in csv.DictReader(out_csv.open())}
    assert rows["a1"]["budget"] == "10.00" and rows["a1"]["over_budget"] == "yes"  # the fixture's tags are dblab.*
    assert rows["a0"]["cost"] == "4.00" and UNTAGGED not in rows
    # --budget wins over the class layer's
    rc = usage(class_dir, "--period", "2026-10", "--fixture", str(class_dir / "usage.json"), "--budget", "20")
    assert rc == 0 and "nobody over budget" in capsys.readouterr().out


def test_the_cloud_source_takes_the_tag_namespace_from_the_class_layer(class_dir):
    from labctl.roster import load_class_config, load_roster
    from labctl.usage import choose_source, layer_defaults, tag_namespace_of

    with_layer(class_dir)
    cls = load_class_config(class_dir / "class.yaml")
    students = load_roster(class_dir / "roster.csv").students
    layer = layer_defaults(class_dir / "class.yaml", students, cls)
    assert (layer.tag_namespace, layer.monthly_budget_usd) == ("dblab", 10.0)
    namespace = tag_namespace_of(cls, layer, None)
    src = choose_source(students, cls, False, None, namespace, sdk_check=lambda: None)
    assert isinstance(src, OciUsage) and src.namespace == "dblab" and src.profiles == [None]


def test_a_bad_class_layer_is_the_class_layers_own_message(class_dir, capsys):
    with_layer(class_dir, budget="0")
    assert usage(class_dir, "--period", "2026-10", "--offline") == 2
    err = capsys.readouterr().err
    assert "classLayer.monthlyBudgetUsd" in err and "Traceback" not in err


def test_cli_offline_fake_from_the_planned_stacks_is_prorated(class_dir, capsys):
    text = (class_dir / "class.yaml").read_text() + "dbShape: MySQL.2\nappShape: VM.Standard.E4.Flex\n"
    (class_dir / "class.yaml").write_text(text)
    assert usage(class_dir, "--period", "2026-10", "--offline", "--csv", str(class_dir / "a.csv")) == 0
    assert usage(class_dir, "--period", "2026-09-16..2026-10-01", "--offline", "--csv", str(class_dir / "b.csv")) == 0
    month = {r["student"]: float(r["cost"]) for r in csv.DictReader((class_dir / "a.csv").open())}
    half = {r["student"]: float(r["cost"]) for r in csv.DictReader((class_dir / "b.csv").open())}
    assert set(month) == {"a0", "a1", "a2"} and all(v > 0 for v in month.values())
    assert all(half[k] == pytest.approx(month[k] / 2, abs=0.02) for k in month)
    assert "offline fake" in capsys.readouterr().out


OFF = "--offline"


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--period", "2026-13", OFF], "--period: '2026-13' has no month 13"),
        (["--period", "2026-10", OFF, "--only", "a0,nobody"], "--only names students not in the roster: nobody"),
        (["--period", "2026-10", OFF, "--budget", "0"], "--budget: 0.0 must be more than 0"),
        (["--period", "2026-10", OFF, "--budget", "nan"], "must be more than 0"),
        (["--period", "2026-10", OFF, "--budget", "-5"], "must be more than 0"),
        (["--period", "2026-10", OFF, "--csv", "{d}"], "is a directory; give a file name"),
        (["--period", "2026-10", OFF, "--csv", "{d}/no/such/dir/u.csv"], "does not exist"),
        (["--period", "2026-10", "--fixture", "{d}/missing.json"], "no such file (usage fixture)"),
        (["--period", "2026-10", "--fixture", "{d}/roster.csv"], "not JSON"),
        (["--period", "2026-10"], "the student tag's namespace is not known"),
        (["--period", "2026-10", "--tag-namespace", "bad.name"], "is not a tag namespace name"),
    ],
)
def test_cli_bad_inputs_are_one_message_and_exit_2(class_dir, capsys, extra, words):
    args = [a.replace("{d}", str(class_dir)) for a in extra]
    assert usage(class_dir, *args) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert err.count("labctl class usage:") == 1
    assert not (class_dir / "u.csv").exists()


# --- the real SDK client, OCI played by a loopback server --------------------------------------------------------
def test_the_oci_sdk_client_sends_the_documented_request_and_reads_every_page(tmp_path):
    pytest.importorskip("oci")  # the optional [usage] dependency; make venv installs it with [test]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    tenancy = "ocid1.tenancy.oc1..aaaaaaaaexampletenancy000000000000"
    user = "ocid1.user.oc1..aaaaaaaaexampleuser0000000000000000"
    fp = "12:34:56:78:90:ab:cd:ef:12:34:56:78:90:ab:cd:ef"
    (tmp_path / "config").write_text(
        f"[DEFAULT]\nuser={user}\nfingerprint={fp}\ntenancy={tenancy}\nregion=ap-singapore-1\n"
        f"key_file={tmp_path / 'key.pem'}\n"
    )
    pages = [answer(("a0", "Compute", 1.5)), answer(("a1", "MySQL", 2.25), (None, "Network", 0.1))]
    seen: list[tuple[str, dict, dict]] = []

    class OciStandIn(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            doc = json.dumps(pages[len(seen) - 1]).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(doc)))
            if len(seen) < len(pages):
                self.send_header("opc-next-page", f"page-{len(seen) + 1}")
            self.end_headers()
            self.wfile.write(doc)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OciStandIn)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        src = OciUsage("dblab", [None], str(tmp_path / "config"), f"http://127.0.0.1:{srv.server_address[1]}")
        items = src.costs(NOV)
    finally:
        srv.shutdown()
        srv.server_close()
    assert [(i.student, i.service, i.amount) for i in items] == [
        ("a0", "Compute", 1.5),
        ("a1", "MySQL", 2.25),
        (UNTAGGED, "Network", 0.1),
    ]
    assert [p for p, _, _ in seen] == ["/20200107/usage", "/20200107/usage?page=page-2"]
    path, headers, body = seen[0]
    assert body == {
        "tenantId": tenancy,
        "timeUsageStarted": "2026-11-01T00:00:00Z",
        "timeUsageEnded": "2026-12-01T00:00:00Z",
        "granularity": "DAILY",
        "queryType": "COST",
        "isAggregateByTime": True,
        "groupBy": ["tagNamespace", "tagKey", "tagValue", "service"],
        "groupByTag": [{"namespace": "dblab", "key": "student"}],
    }
    # signed as OCI requires (draft-cavage HTTP signatures with the API key): keyId names tenancy/user/fingerprint,
    # and the signature verifies with the key's public half
    auth = headers["authorization"]
    assert f'keyId="{tenancy}/{user}/{fp}"' in auth
    signed = auth.split('headers="')[1].split('"')[0].split()
    sig = base64.b64decode(auth.split('signature="')[1].split('"')[0])
    lines = []
    for h in signed:
        lines.append(f"(request-target): post {path}" if h == "(request-target)" else f"{h}: {headers[h]}")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    key.public_key().verify(sig, "\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    assert usage_request(tenancy, NOV, "dblab")["time_usage_started"].isoformat() == "2026-11-01T00:00:00+00:00"


def test_a_missing_oci_profile_is_a_clear_error(tmp_path):
    pytest.importorskip("oci")
    (tmp_path / "config").write_text("[OTHER]\nuser=x\n")
    with pytest.raises(UsageError, match=r"\[DEFAULT\]"):
        OciUsage("dblab", [None], str(tmp_path / "config")).costs(NOV)


def test_without_the_oci_sdk_the_cloud_source_says_how_to_install_it(class_dir, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "oci", None)  # `import oci` now raises ImportError, as without the [usage] extra
    assert usage(class_dir, "--period", "2026-10", "--tag-namespace", "dblab") == 2
    err = capsys.readouterr().err
    assert "pip install 'oci-dblab[usage]'" in err and "--offline" in err and "Traceback" not in err


def test_per_student_tenancies_are_read_one_profile_each_and_attributed_to_their_student(tmp_path):
    pytest.importorskip("oci")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    profiles = ""
    for i in range(2):
        profiles += (
            f"[S{i}]\nuser=ocid1.user.oc1..aaaaaaaaexampleuser{i:015d}\n"
            f"fingerprint=12:34:56:78:90:ab:cd:ef:12:34:56:78:90:ab:cd:e{i}\n"
            f"tenancy=ocid1.tenancy.oc1..aaaaaaaaexampletenancy{i:012d}\nregion=ap-singapore-1\n"
            f"key_file={tmp_path / 'key.pem'}\n"
        )
    (tmp_path / "config").write_text(profiles)
    tenants: list[str] = []

    class OciStandIn(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            tenants.append(body["tenantId"])
            doc = json.dumps(answer((None, "Compute", 1.0 + len(tenants)))).encode()  # no tag: a whole tenancy
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(doc)))
            self.end_headers()
            self.wfile.write(doc)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OciStandIn)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        src = OciUsage(
            "dblab",
            ["S0", "S1"],
            str(tmp_path / "config"),
            f"http://127.0.0.1:{srv.server_address[1]}",
            student_of_profile={"S0": "a0", "S1": "a1"},
        )
        items = src.costs(NOV)
    finally:
        srv.shutdown()
        srv.server_close()
    assert tenants == [f"ocid1.tenancy.oc1..aaaaaaaaexampletenancy{i:012d}" for i in range(2)]
    assert [(i.student, i.amount) for i in items] == [("a0", 2.0), ("a1", 3.0)]
