"""``EnvFile``: the lab's app user, its ``.env`` (on this machine and on the VM) and a connection check.

A Pulumi dynamic resource. The provider class lives in this importable module, so the engine pickles it *by
reference* (``components.envfile.EnvFileProvider``), not by value: the provider process imports this file, and
changing the code below changes behaviour without touching the state. Because the state cannot notice such a
change on its own, ``providerVersion`` is an input: bump ``PROVIDER_VERSION`` whenever the provider's behaviour
changes and every stack updates (rewrites and re-checks) on its next ``pulumi up``.

What the provider does (the logic itself is in ``components/envcheck.py``, plain functions):

* **create**: over SSH to the app VM and a tunnel from there to the DB's private IP, the admin creates the lab
  database (``dbName``) and an app user limited to it (TLS required); the app user's session is then checked
  (``SELECT 1``, version, ``CURRENT_USER()``, TLS cipher, create/drop a table). When the check passes the
  ``.env`` (the same keys for every engine, ``engines.base.DOTENV_KEYS``: DB_ENGINE, DB_HOST, DB_PORT, DB_NAME,
  DB_USER, DB_PASSWORD, DB_SSL_MODE, DATABASE_URL — app user, never the admin) is written on the VM in
  ``remoteDir`` over SFTP and locally at ``localPath``, both mode 0600.
* **diff**: never replaces; any change to an input (or to the provider version) is an update.
* **update**: same as create (passwords reset, grants reset, files rewritten, check re-run); a renamed app user
  is dropped, files at an old location are removed.
* **delete**: removes the local ``.env``, and the remote one when the VM still answers within a few seconds;
  an unreachable VM never fails a destroy. The DB and the app user are left alone (the DB system usually goes
  with the stack; dropping data is not this resource's call).

SSH host keys are trusted on first use into ``.dblab_known_hosts`` next to the local ``.env`` (never
``~/.ssh/known_hosts``); see ``components/envcheck.py`` for why. The SSH private key is read from its path by
the provider; only the path is a property, so the key itself never enters the state.

Secrets: ``adminPassword`` and ``appPassword`` arrive as secrets and are listed in
``additional_secret_outputs``; the ``check`` output and every error message are built without them.
"""

from __future__ import annotations

import os
import stat
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown

import engines
from components import envcheck

PROVIDER_VERSION = "2"  # 2: the engine's adapter does the check; the .env has the engine-neutral keys
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # pulumi.runtime.rpc.UNKNOWN: a value not known in preview
# Every sentinel the engine may send for an unknown value, one per type (pulumi/pulumi
# sdk/go/common/resource/plugin/rpc.go UnknownBoolValue ... UnknownObjectValue). The SDK's host turns only the
# string one into pulumi.output.Unknown; the others would reach check()/diff() as plain strings.
UNKNOWN_SENTINELS: frozenset[str] = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # UnknownBoolValue
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # UnknownNumberValue
        UNKNOWN,  # UnknownStringValue
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # UnknownArrayValue
        "030794c1-ac77-496b-92df-f27374a8bd58",  # UnknownAssetValue
        "e48ece36-62e2-4504-bad9-02848725956a",  # UnknownArchiveValue
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # UnknownObjectValue
    }
)

# python attribute name -> property name the provider sees (inputs first, then outputs)
_INPUT_NAMES: dict[str, str] = {
    "db_engine": "dbEngine",
    "app_host": "appHost",
    "ssh_user": "sshUser",
    "db_host": "dbHost",
    "db_port": "dbPort",
    "db_hostname": "dbHostname",
    "db_name": "dbName",
    "admin_user": "adminUser",
    "admin_password": "adminPassword",
    "app_user": "appUser",
    "app_password": "appPassword",
    "local_path": "localPath",
    "remote_dir": "remoteDir",
    "ssh_private_key_path": "sshPrivateKeyPath",
    "ssh_port": "sshPort",
    "ssl_mode": "sslMode",
    "ssl_ca": "sslCa",
    "check_timeout_seconds": "checkTimeoutSeconds",
    "provider_version": "providerVersion",
}
_OUTPUT_NAMES: dict[str, str] = {
    "path": "path",
    "remote_path": "remotePath",
    "known_hosts_path": "knownHostsPath",
    "check": "check",
}
INPUT_KEYS: tuple[str, ...] = tuple(_INPUT_NAMES.values())
SECRET_KEYS: tuple[str, ...] = ("adminPassword", "appPassword")
DEFAULTS: dict[str, Any] = {
    "sshPort": 22,
    "dbEngine": engines.DEFAULT,
    "sslMode": "",  # "": the engine's (Engine.ssl_mode)
    "sslCa": "",
    "checkTimeoutSeconds": 600,
    "localPath": ".env",
    "sshPrivateKeyPath": "",
    "providerVersion": PROVIDER_VERSION,
}
_TO_PROPERTY = {**_INPUT_NAMES, **_OUTPUT_NAMES}
_TO_ATTRIBUTE = {v: k for k, v in _TO_PROPERTY.items()}
MAX_CHECK_TIMEOUT_S = 3600
DELETE_SSH_TIMEOUT_S = 10.0


def is_unknown(value: Any) -> bool:
    """True for a value that is not known yet (preview), in every form it reaches the provider: the
    ``pulumi.output.Unknown`` objects the SDK's provider host makes of the engine's sentinel before calling
    ``check()``/``diff()`` (``pulumi/dynamic/__main__.py``: ``deserialize_properties(..., keep_unknowns=True)``),
    any of the engine's sentinel strings, or a dict/list holding one of those."""
    if isinstance(value, Unknown):
        return True
    if isinstance(value, str):
        return value in UNKNOWN_SENTINELS
    if isinstance(value, dict):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_unknown(v) for v in value)
    return False


def _as_int(value: Any) -> int | None:
    """Integers arrive from the engine as floats (3306.0) or, from config, as strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def normalize(props: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in, integers as int, strings stripped; unknown values left as they are."""
    out = dict(props)
    for key, default in DEFAULTS.items():
        if out.get(key) is None or (key not in ("sshPrivateKeyPath", "sslCa", "sslMode") and out.get(key) == ""):
            out[key] = default
    for key in ("dbPort", "sshPort", "checkTimeoutSeconds"):
        if not is_unknown(out.get(key)):
            number = _as_int(out.get(key))
            if number is not None:
                out[key] = number
    for key in (
        "dbEngine",
        "appHost",
        "sshUser",
        "dbHost",
        "dbHostname",
        "dbName",
        "adminUser",
        "appUser",
        "localPath",
        "remoteDir",
        "sshPrivateKeyPath",
        "sslMode",
        "sslCa",
    ):
        value = out.get(key)
        if isinstance(value, str) and not is_unknown(value):
            out[key] = value.strip() if key != "dbEngine" else value.strip().lower()
    engine = engines.ENGINES.get(out.get("dbEngine")) if isinstance(out.get("dbEngine"), str) else None
    mode = out.get("sslMode")
    if engine is not None and isinstance(mode, str) and not is_unknown(mode):
        # the engine's own spelling (REQUIRED for MySQL, require for PostgreSQL), whatever the case given
        modes = {m.lower(): m for m in engine.ssl_modes or (engine.ssl_mode,)}
        out["sslMode"] = modes.get(mode.lower(), mode) if mode else engine.ssl_mode
    return out


def validate(props: dict[str, Any]) -> list[tuple[str, str]]:
    """(property, reason) for every bad input. Unknown (preview) values are skipped; secrets are never quoted."""
    problems: list[tuple[str, str]] = []

    def known(key: str) -> bool:
        return not is_unknown(props.get(key))

    def need_text(key: str, what: str, example: str) -> None:
        if known(key) and (not isinstance(props.get(key), str) or not props[key]):
            problems.append((key, f"{key} is required: {what}, e.g. {example}"))

    need_text("appHost", "the app VM's public IP (the SSH target)", "129.146.10.20")
    need_text("sshUser", "the VM image's login user", "opc")
    need_text("dbHost", "the DB system's private IP (DB_HOST)", "10.0.2.15")
    need_text("dbHostname", "the DB's FQDN (the TLS server name)", "labdb.private.labvcn.oraclevcn.com")
    need_text("adminUser", "the DB admin user", "admin")
    need_text("localPath", "where to write the .env on this machine", ".env")
    need_text("remoteDir", "the app directory on the VM", "/home/opc/app")
    for key in ("adminPassword", "appPassword"):
        if known(key) and (not isinstance(props.get(key), str) or not props[key]):
            problems.append((key, f"{key} is required (a secret; its value is never shown)"))
    if known("appPassword") and isinstance(props.get("appPassword"), str):
        problem = envcheck.dotenv_problem("appPassword", props["appPassword"])
        if problem:
            problems.append(("appPassword", problem))

    for key, lo, hi, example in (
        ("dbPort", 1, 65535, "3306"),
        ("sshPort", 1, 65535, "22"),
        ("checkTimeoutSeconds", 1, MAX_CHECK_TIMEOUT_S, "600"),
    ):
        if known(key):
            number = _as_int(props.get(key))
            if number is None or not lo <= number <= hi:
                problems.append((key, f"{key} must be a whole number from {lo} to {hi}, e.g. {example}"))

    if known("dbName") and not (isinstance(props.get("dbName"), str) and envcheck.DB_NAME_RE.match(props["dbName"])):
        problems.append(
            ("dbName", "dbName must be letters, digits and _ (not starting with a digit, max 64), e.g. lab")
        )
    if known("appUser"):
        app_user = props.get("appUser")
        if not (isinstance(app_user, str) and envcheck.USER_NAME_RE.match(app_user)):
            problems.append(
                ("appUser", "appUser must be letters, digits and _ (not starting with a digit, max 32), e.g. lab_app")
            )
        elif known("adminUser") and app_user == props.get("adminUser"):
            problems.append(
                ("appUser", "appUser must differ from adminUser: the .env holds the app user, never the admin")
            )

    if known("localPath") and isinstance(props.get("localPath"), str) and props["localPath"]:
        problem = local_env_problem(Path(props["localPath"]))
        if problem:
            problems.append(("localPath", problem))

    engine = engines.ENGINES.get(props.get("dbEngine")) if known("dbEngine") else None
    if known("dbEngine") and engine is None:
        problems.append(("dbEngine", f"dbEngine must be one of {', '.join(engines.ENGINES)}, e.g. {engines.DEFAULT}"))
    modes = (engine.ssl_modes or (engine.ssl_mode,)) if engine is not None else ()
    if engine is not None and known("sslMode") and props.get("sslMode") not in modes:
        problems.append(("sslMode", f"sslMode must be one of {', '.join(modes)}, e.g. {engine.ssl_mode}"))
    if known("sslCa") and props.get("sslCa") and not Path(str(props["sslCa"])).expanduser().is_file():
        problems.append(("sslCa", f"sslCa: no CA bundle at {props['sslCa']}"))

    if known("sshPrivateKeyPath"):
        configured = str(props.get("sshPrivateKeyPath") or "")
        if configured and not Path(configured).expanduser().is_file():
            problems.append(
                (
                    "sshPrivateKeyPath",
                    f"sshPrivateKeyPath: no private key file at {configured} (the path, e.g. "
                    "~/.ssh/id_ed25519, of the key whose .pub is sshPublicKey)",
                )
            )
        elif not configured and not envcheck.resolve_key_paths(""):
            problems.append(
                (
                    "sshPrivateKeyPath",
                    "sshPrivateKeyPath is not set and none of "
                    f"{', '.join(envcheck.DEFAULT_SSH_KEYS)} exists; set it to your key's path",
                )
            )
    return problems


def local_env_problem(path: Path) -> str | None:
    """Why the local ``.env`` may not be written at ``path``: a symbolic link (it would be written, and later deleted,
    through the link), a directory, or a file git tracks (the DB password would be committed); None when fine."""
    path = Path(os.path.abspath(Path(path).expanduser()))
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        return f"localPath {path} cannot be inspected ({e.strerror or e})"
    if st is not None and stat.S_ISLNK(st.st_mode):
        return (
            f"localPath {path} is a symbolic link; the .env is never written or deleted through a link: "
            "give a real file path, e.g. .env"
        )
    if st is not None and stat.S_ISDIR(st.st_mode):
        return f"localPath {path} is a directory; give a file path inside it, e.g. {path / '.env'}"
    if path.parent.is_dir():
        try:
            tracked = subprocess.run(
                ["git", "-C", str(path.parent), "ls-files", "--error-unmatch", "--", path.name],
                capture_output=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None  # no git here: nothing can be committed by accident
        if tracked.returncode == 0:
            return (
                f"localPath {path} is tracked by git; the .env holds the DB password and would be committed. "
                f"Run: git rm --cached {path.name} && echo {path.name} >> .gitignore"
            )
    return None


def _local_path(props: dict[str, Any]) -> Path:
    # absolute, but links are NOT resolved: writes and deletes refuse a link instead of following it
    return Path(os.path.abspath(Path(str(props["localPath"])).expanduser()))


def _request(props: dict[str, Any], previous_app_user: str | None = None) -> envcheck.CheckRequest:
    local = _local_path(props)
    return envcheck.CheckRequest(
        ssh=envcheck.SshTarget(
            host=props["appHost"],
            port=int(props["sshPort"]),
            user=props["sshUser"],
            key_paths=tuple(envcheck.resolve_key_paths(str(props.get("sshPrivateKeyPath") or ""))),
            known_hosts=envcheck.known_hosts_path(local),
        ),
        db=envcheck.DbTarget(
            host=props["dbHost"],
            port=int(props["dbPort"]),
            hostname=props["dbHostname"],
            ssl_mode=props["sslMode"],
            ssl_ca=str(props.get("sslCa") or ""),
        ),
        accounts=envcheck.Accounts(
            db_name=props["dbName"],
            admin_user=props["adminUser"],
            admin_password=props["adminPassword"],
            app_user=props["appUser"],
            app_password=props["appPassword"],
            previous_app_user=previous_app_user,
        ),
        timeout_s=float(props["checkTimeoutSeconds"]),
        engine=props["dbEngine"],
    )


def _dotenv(props: dict[str, Any]) -> str:
    return envcheck.render_dotenv(
        envcheck.env_values(
            engine=engines.get(props["dbEngine"]),
            db_host=props["dbHost"],
            db_port=int(props["dbPort"]),
            db_name=props["dbName"],
            app_user=props["appUser"],
            app_password=props["appPassword"],
            ssl_mode=props["sslMode"],
        )
    )


class EnvFileError(Exception):
    """A clear, secret-free failure of the EnvFile provider."""


class EnvFileProvider(ResourceProvider):
    """CRUD for EnvFile. Stateless: everything it needs is in the properties (so pickling stays trivial)."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = normalize(news)
        failures = [CheckFailure(key, reason) for key, reason in validate(inputs)]
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        news = normalize(news)
        recorded_version = olds.get("providerVersion")  # state from before the version input: not "current"
        olds = normalize({k: olds.get(k) for k in INPUT_KEYS})
        olds["providerVersion"] = recorded_version
        changed = [k for k in INPUT_KEYS if is_unknown(news.get(k)) or olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)

    def _apply(self, props: dict[str, Any], previous_app_user: str | None = None) -> dict[str, Any]:
        problems = validate(props)
        if problems:
            raise EnvFileError("invalid EnvFile inputs: " + "; ".join(reason for _, reason in problems))
        request = _request(props, previous_app_user)
        content = _dotenv(props)
        upload = envcheck.StagedUpload(str(props["remoteDir"]), content)  # staged during the check, renamed after
        try:
            report, remote_path = envcheck.run_check(request, upload)
        except envcheck.CheckFailed as failure:
            raise EnvFileError(f"EnvFile connection check failed: {failure}") from None
        local = envcheck.write_private_file(_local_path(props), content)
        return {
            **props,
            "path": str(local),
            "remotePath": remote_path,
            "knownHostsPath": str(request.ssh.known_hosts),
            "check": report.as_output(),
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        props = normalize(props)
        outs = self._apply(props)
        return CreateResult(f"envfile-{uuid.uuid4().hex}", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        news = normalize(news)
        olds = normalize(olds)
        previous_user = olds.get("appUser") if olds.get("appUser") != news.get("appUser") else None
        outs = self._apply(news, previous_app_user=previous_user)
        old_local = olds.get("path")
        if old_local and Path(old_local) != Path(outs["path"]):
            envcheck.remove_file(Path(old_local))
        moved = (olds.get("appHost"), olds.get("sshPort")) != (news["appHost"], news["sshPort"])
        if olds.get("remotePath") and (moved or olds.get("remotePath") != outs["remotePath"]):
            self._remove_remote(olds, forget_host=moved)
        return UpdateResult(outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh: state stays as recorded (re-checking a live DB on every refresh would be surprising)."""
        return ReadResult(id_, props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        props = normalize(props)
        local = props.get("path") or (props.get("localPath") and str(_local_path(props)))
        if local:
            envcheck.remove_file(Path(local))
        self._remove_remote(props, forget_host=True)

    @staticmethod
    def _remove_remote(props: dict[str, Any], forget_host: bool) -> None:
        """Best effort, bounded: the remote .env goes if the VM answers; optionally forget its host key."""
        remote = props.get("remotePath")
        if not remote or not props.get("appHost") or not props.get("path"):
            return
        known_hosts = envcheck.known_hosts_path(props["path"])
        port = _as_int(props.get("sshPort")) or 22
        target = envcheck.SshTarget(
            host=props["appHost"],
            port=port,
            user=str(props.get("sshUser") or "opc"),
            key_paths=tuple(envcheck.resolve_key_paths(str(props.get("sshPrivateKeyPath") or ""))),
            known_hosts=known_hosts,
        )
        timeout = min(DELETE_SSH_TIMEOUT_S, float(_as_int(props.get("checkTimeoutSeconds")) or DELETE_SSH_TIMEOUT_S))
        envcheck.remove_remote_env(target, str(remote), timeout=timeout)
        if forget_host:
            envcheck.forget_host_key(known_hosts, target.host, port)


@dataclass
class EnvFileArgs:
    app_host: pulumi.Input[str]  # VM public IP (SSH target)
    ssh_user: pulumi.Input[str]  # "opc" on Oracle Linux
    db_host: pulumi.Input[str]  # DB private IP (tunnel destination, DB_HOST)
    db_port: pulumi.Input[int]
    db_hostname: pulumi.Input[str]  # FQDN (the TLS server name for the identity-checking modes)
    db_name: pulumi.Input[str]
    admin_user: pulumi.Input[str]
    admin_password: pulumi.Input[str]  # secret
    app_user: pulumi.Input[str]
    app_password: pulumi.Input[str]  # secret
    local_path: pulumi.Input[str]  # envFilePath, default ".env"
    remote_dir: pulumi.Input[str]  # app dir on the VM, e.g. "/home/opc/app"
    ssh_private_key_path: pulumi.Input[str]  # a PATH; "" means the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa
    ssh_port: pulumi.Input[int] = 22
    ssl_mode: pulumi.Input[str] = ""  # one of the engine's ssl_modes; "" = its default (MySQL: REQUIRED)
    check_timeout_seconds: pulumi.Input[int] = 600
    ssl_ca: pulumi.Input[str] = ""  # CA bundle path for the verifying modes; "" = system trust store
    db_engine: pulumi.Input[str] = ""  # the dbEngine (its check adapter and .env); "" = the registry's default


class EnvFile(Resource, module="dblab", name="EnvFile"):
    """The app user, its .env (local + VM) and the connection check. Outputs: path, remote_path, check, ..."""

    path: pulumi.Output[str]
    remote_path: pulumi.Output[str]
    known_hosts_path: pulumi.Output[str]
    check: pulumi.Output[dict]

    def __init__(self, name: str, args: EnvFileArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {attr: getattr(args, attr) for attr in _INPUT_NAMES if attr != "provider_version"}
        props["provider_version"] = PROVIDER_VERSION
        props.update({attr: None for attr in _OUTPUT_NAMES})
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=list(SECRET_KEYS))
        super().__init__(EnvFileProvider(), name, props, pulumi.ResourceOptions.merge(opts, secret_opts))

    def translate_input_property(self, prop: str) -> str:
        return _TO_PROPERTY.get(prop, prop)

    def translate_output_property(self, prop: str) -> str:
        return _TO_ATTRIBUTE.get(prop, prop)
