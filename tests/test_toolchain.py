"""A fresh clone + `pulumi preview` with no `make`: Pulumi's own pip toolchain must produce a working .venv.

Pulumi.yaml says ``toolchain: pip`` and ``virtualenv: .venv``. When ``.venv`` is missing, the Python language host
calls ``EnsureVenv`` → ``InstallDependencies`` (pulumi/pulumi ``sdk/python/toolchain/pip.go``), which:

1. finds Python as ``CommandPath`` does: ``$PULUMI_PYTHON_CMD``, else ``python3`` then ``python`` on PATH (the
   reverse order on Windows);
2. runs ``<python> -m venv <root>/.venv`` (an absolute path);
3. runs ``<venv>/bin/python -m pip install --upgrade pip setuptools wheel`` (``Scripts\\python.exe`` on Windows)
   in the program directory, with the environment "activated" (``ActivateVirtualEnv``: the venv's bin dir first on
   PATH, ``VIRTUAL_ENV`` set, ``PYTHONHOME`` removed);
4. if ``requirements.txt`` does not exist, stops there ("exit early"); else runs
   ``<venv>/bin/python -m pip install -r requirements.txt`` the same way.

The test below does exactly that in a ``git clone`` of this repository's HEAD, then runs the real program under
the OCI mocks with that interpreter and starts the dynamic provider host (``python -m pulumi.dynamic``) from that
venv with the clone as working directory, as the engine does, and talks gRPC to it. pip's cache makes the
installs local after the first run; the only network it may use is PyPI.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip (present in every venv) vendors the same parser
    from pip._vendor import tomli as tomllib

REQUIREMENTS = ROOT / "requirements.txt"


def requirement_lines(text: str) -> list[str]:
    return [ln.split("#", 1)[0].strip() for ln in text.splitlines() if ln.split("#", 1)[0].strip()]


def runtime_pins() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def test_requirements_txt_equals_pyproject_runtime_pins():
    assert REQUIREMENTS.is_file(), "requirements.txt is what Pulumi's pip toolchain installs; it must exist"
    got, want = requirement_lines(REQUIREMENTS.read_text()), runtime_pins()
    assert sorted(got) == sorted(want), (
        f"requirements.txt and pyproject.toml [project].dependencies differ: only in requirements.txt "
        f"{sorted(set(got) - set(want))}, only in pyproject.toml {sorted(set(want) - set(got))}"
    )
    assert len(got) == len(set(got))


def test_every_runtime_dependency_is_an_exact_pin():
    for line in requirement_lines(REQUIREMENTS.read_text()):
        specs = list(Requirement(line).specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, line


def test_pulumi_yaml_asks_for_the_pip_toolchain_and_a_project_venv():
    options = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]["options"]
    assert options["toolchain"] == "pip" and options["virtualenv"] == ".venv"


# --- the emulation --------------------------------------------------------------------------------------------


def command_path(environ: dict[str, str], platform: str = sys.platform) -> str:
    """pip.go ``CommandPath``: PULUMI_PYTHON_CMD, else python3/python (python/python3 on Windows) on PATH."""
    if environ.get("PULUMI_PYTHON_CMD"):
        names = [environ["PULUMI_PYTHON_CMD"]]
    else:
        names = ["python", "python3"] if platform == "win32" else ["python3", "python"]
    for name in names:
        found = shutil.which(name, path=environ.get("PATH"))
        if found:
            return found
    raise AssertionError(f"none of {names} is on PATH: Pulumi could not find Python either")


def venv_bin(venv: Path) -> Path:
    return venv / ("Scripts" if sys.platform == "win32" else "bin")


def venv_python(venv: Path) -> Path:
    return venv_bin(venv) / ("python.exe" if sys.platform == "win32" else "python")


def activate(environ: dict[str, str], venv: Path) -> dict[str, str]:
    """pip.go/toolchain.go ``ActivateVirtualEnv``."""
    out: dict[str, str] = {}
    has_path = False
    for key, value in environ.items():
        if key.upper() == "PATH":
            has_path = True
            out[key] = f"{venv_bin(venv)}{os.pathsep}{value}"
        elif key.upper() in ("PYTHONHOME", "VIRTUAL_ENV"):
            continue
        else:
            out[key] = value
    if not has_path:
        out["PATH"] = str(venv_bin(venv))
    out["VIRTUAL_ENV"] = str(venv)
    return out


def clean_environ() -> dict[str, str]:
    """The user's shell: no trace of the test run's own venv or of this checkout on the import path."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    if sys.prefix != sys.base_prefix:  # the tests run in a venv: take its bin dir off PATH
        own_bin = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != own_bin)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def toolchain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(clone, venv python, activated environment) after Pulumi's pip toolchain step on a fresh clone."""
    clone = tmp_path_factory.mktemp("fresh") / "oci-dblab"
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    run(["git", "clone", "--quiet", str(ROOT), str(clone)], cwd=clone.parent, env=dict(os.environ))
    cloned = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    assert cloned.stdout == head.stdout
    assert not (clone / ".venv").exists()

    options = yaml.safe_load((clone / "Pulumi.yaml").read_text())["runtime"]["options"]
    assert options["toolchain"] == "pip"
    venv = (clone / options["virtualenv"]).resolve()  # resolveVirtualEnvironmentPath: relative to the project root

    env = clean_environ()
    run([command_path(env), "-m", "venv", str(venv)], cwd=clone, env=env)
    activated = activate(env, venv)
    python = venv_python(venv)
    run([str(python), "-m", "pip", "install", "--upgrade", "pip", "setuptools", "wheel"], cwd=clone, env=activated)
    assert (clone / "requirements.txt").is_file(), "pip.go exits early without requirements.txt: nothing installed"
    run([str(python), "-m", "pip", "install", "-r", "requirements.txt"], cwd=clone, env=activated)
    return clone, python, activated


def test_fresh_clone_venv_holds_exactly_the_pinned_runtime(toolchain):
    clone, python, env = toolchain
    proc = run([str(python), "-m", "pip", "list", "--format", "json"], cwd=clone, env=env)
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(proc.stdout)}
    for line in runtime_pins():
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue  # e.g. tzdata on Windows only
        [spec] = list(req.specifier)
        got = installed.get(req.name.lower().replace("_", "-"))
        assert got == spec.version, f"{line}: got {got}"
    assert "pytest" not in installed and "ruff" not in installed  # test tools stay out of a student's venv


def test_program_runs_under_mocks_with_the_toolchain_interpreter(toolchain):
    clone, python, env = toolchain
    proc = run([str(python), "-m", "labctl", "plan", "--stack", "dev", "--format", "json"], cwd=clone, env=env)
    doc = json.loads(proc.stdout)
    types = {r["type"] for r in doc["resources"]}
    assert {"oci:Core/vcn:Vcn", "oci:Core/instance:Instance", "oci:Mysql/mysqlDbSystem:MysqlDbSystem"} <= types
    assert "pulumi-python:dynamic/dblab:EnvFile" in types
    where = run(
        [str(python), "-c", "import components, pulumi; print(components.__file__, pulumi.__file__)"],
        cwd=clone,
        env=env,
    )
    components_file, pulumi_file = where.stdout.split()
    assert Path(components_file).resolve().is_relative_to(clone.resolve())  # the clone's code, not this checkout's
    assert Path(pulumi_file).resolve().is_relative_to((clone / ".venv").resolve())


def test_dynamic_provider_host_starts_from_the_toolchain_venv_and_loads_the_clones_provider(toolchain):
    import grpc
    from google.protobuf import struct_pb2
    from pulumi.dynamic.dynamic import serialize_provider
    from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

    from components.envfile import EnvFileProvider

    clone, python, env = toolchain
    host = subprocess.Popen(
        [str(python), "-u", "-m", "pulumi.dynamic"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = host.stdout.readline().strip()
        assert line.isdigit() and 0 < int(line) < 65536, f"no port from the host: {line!r} {host.stderr.read()[-2000:]}"
        with grpc.insecure_channel(f"127.0.0.1:{line}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            configured = stub.Configure(provider_pb2.ConfigureRequest(args=struct_pb2.Struct()), timeout=60)
            assert configured.acceptSecrets is False
            news = struct_pb2.Struct()
            # As the engine sends them to a host that does not accept secrets: plain values, numbers as doubles.
            news.update({"__provider": serialize_provider(EnvFileProvider()), "dbPort": 70000.0, "sshPort": 22.0})
            urn = "urn:pulumi:dev::oci-dblab::pulumi-python:dynamic/dblab:EnvFile::lab-env"
            checked = stub.Check(provider_pb2.CheckRequest(urn=urn, olds=struct_pb2.Struct(), news=news), timeout=60)
        reasons = {f.property: f.reason for f in checked.failures}
        assert "dbPort must be a whole number from 1 to 65535" in reasons["dbPort"]
        assert reasons["appHost"].startswith("appHost is required")
        assert base64.b64decode(news["__provider"]).count(b"components.envfile") == 1  # imported by reference
    finally:
        host.terminate()
        host.wait(timeout=30)
