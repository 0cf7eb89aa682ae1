"""Stack config exactly as the Pulumi CLI hands it to the program: one loader for every offline path.

Before the CLI starts a program it reads the project file and the stack file, merges the project's ``config:``
defaults into the stack's config, refuses keys that have neither, checks every value against its declared type and
hands the merged map to the program (``PULUMI_CONFIG``). Our offline runs (``labctl plan``, ``labctl diff``,
``labctl class --offline``, the tests, the local rehearsal) call ``merge_config`` (through ``load_stack`` or
``labctl.offline.run_program``) so they accept and refuse exactly what ``pulumi up`` would, with Pulumi's own words.

What is emulated (pulumi/pulumi at 1b5949891b3c, Aug 2026):
- the project file: ``sdk/go/common/workspace/project.go`` ``RewriteShorthandConfigValues`` (``key: value``
  shorthand), ``(*Project).Validate`` (default of the declared type, arrays need ``items``, keys of other
  namespaces take a ``value`` and no type/default);
- the stack file: ``sdk/go/common/resource/config/key.go`` ``ParseKey`` and ``object.go`` ``unmarshalObject`` /
  ``MarshalString`` (how YAML scalars become the strings the program reads), parsed with the YAML rules of
  gopkg.in/yaml.v3 ``resolve.go`` (``yes`` stays a string, ``010`` is octal, …) rather than PyYAML's YAML 1.1;
- the merge: ``pkg/workspace/config.go`` ``mergeConfig`` (project defaults/values for keys the stack lacks,
  formatted like ``createConfigValue``; "Stack 'dev' is missing configuration value(s) …" worded by
  ``missingStackConfigurationKeysError``/``formatMissingKeys``) and ``validateStackConfigValues`` /
  ``validateStackConfigValue`` (a ``secret: true`` key must be encrypted; ``ValidateConfigValue`` for
  string, integer, boolean and array types, named by ``InferFullTypeName``).

Differences, on purpose: files are first checked like every file a user hands labctl (``labctl/inputs.py``: size,
UTF-8, duplicate keys, plain values YAML readers disagree on, such as ``yes`` or ``010``, must be quoted); the CLI stops
at the first type error, we list every one (same verdict, one run instead of
many); ``secure:`` values are never decrypted offline, so their type is not checked (the CLI checks the decrypted
value) and the program sees a placeholder. Errors name the file and line of the key and never show a value.
This module does not import ``components`` (``labctl diff`` merges the config of another source tree).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labctl.stackfile import SECRET_PLACEHOLDER, StackFileError, stack_file

_MISSING: Any = object()


class CliConfigError(StackFileError):
    """What the Pulumi CLI would refuse before starting the program; one line per problem, no values."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        head = f"{source}: " if source else ""
        if len(problems) == 1:
            text = f"{head}{problems[0]}"
        else:
            text = f"{head}{len(problems)} problems the Pulumi CLI refuses before the program starts:\n" + "\n".join(
                f"  - {p}" for p in problems
            )
        super().__init__(text)


# --- YAML as gopkg.in/yaml.v3 resolves plain scalars ---------------------------------------------------------
class _GoYamlLoader(yaml.SafeLoader):
    """PyYAML loader with yaml.v3's implicit types (``resolve.go``), keeping each mapping key's line."""


_GoYamlLoader.yaml_implicit_resolvers = {}
_NULLS = {"", "~", "null", "Null", "NULL"}
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_DATE = re.compile(r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})$")
_GO_INT = re.compile(r"^[+-]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$")


def _go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64) (then ParseUint): base from the prefix, a leading 0 is octal."""
    if not _GO_INT.match(text):
        return None
    sign = -1 if text[0] == "-" else 1
    body = text.lstrip("+-")
    if body[:2].lower() in ("0x", "0o", "0b"):
        n = int(body[2:], {"x": 16, "o": 8, "b": 2}[body[1].lower()])
    elif len(body) > 1 and body[0] == "0":
        n = int(body[1:], 8)
    else:
        n = int(body)
    n *= sign
    return n if -(2**63) <= n < 2**64 else None


def _resolve_plain(text: str) -> Any:
    """The Go value yaml.v3 gives an untagged plain scalar when decoding into ``any``."""
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if text in (".nan", ".NaN", ".NAN"):
        return math.nan
    if text.lstrip("+-") in (".inf", ".Inf", ".INF"):
        return -math.inf if text.startswith("-") else math.inf
    hint = text[0]
    if hint == ".":
        try:
            return float(text)
        except ValueError:
            return text
    if hint in "+-0123456789":
        m = _DATE.match(text)
        if m:  # date-only timestamps become time.Time, which config stores as its String()
            try:
                day = datetime.date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                day = None
            if day is not None:
                return f"{day.isoformat()} 00:00:00 +0000 UTC"
        plain = text.replace("_", "")
        n = _go_int(plain)
        if n is not None:
            return n
        if _YAML_FLOAT.match(plain):
            return float(plain)
    return text


def _construct_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    if node.tag != "tag:yaml.org,2002:str" or node.style is not None:
        return loader.construct_scalar(node)
    return _resolve_plain(node.value)


class _Keyed(dict):
    """A mapping that remembers the line (1-based) of each key."""

    lines: dict[Any, int]


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Keyed:
    loader.flatten_mapping(node)
    out = _Keyed()
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, "found an unhashable key", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


_GoYamlLoader.add_constructor("tag:yaml.org,2002:str", _construct_scalar)
_GoYamlLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _load_yaml(path: Path, what: str, example: str) -> Any:
    """The document of ``path`` with the values Pulumi's Go reader gives it. First, as for every file a user hands
    labctl (``labctl/inputs.py``): a readable UTF-8 file of sane size, no duplicate keys or alias bombs, and no plain
    value that YAML readers disagree on (``yes``, ``010``, an empty value): quoting those is the only safe reading."""
    from labctl.inputs import InputFileError, load_yaml, read_input_file

    try:
        text = read_input_file(path, what, example)
        load_yaml(text, str(path))
    except InputFileError as e:
        raise StackFileError(str(e)) from None
    try:
        return yaml.load(text, Loader=_GoYamlLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise StackFileError(f"{path}{where}: not valid YAML: {problem}") from None


# --- values as config.Value holds them -------------------------------------------------------------------------
def _go_json(value: Any) -> str:
    """encoding/json of a decoded YAML value (Go formats floats without a trailing .0)."""

    def plain(v: Any) -> Any:
        if isinstance(v, float):
            if math.isnan(v) or math.isinf(v):
                raise ValueError(f"json: unsupported value: {v}")
            return int(v) if v.is_integer() and abs(v) < 1e21 else v
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    return json.dumps(plain(value), separators=(",", ":"), ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class StackValue:
    """One config value as the CLI stores it: the program's string, encrypted or not, JSON object or not."""

    text: str
    secure: bool = False
    object: bool = False
    line: int | None = None
    known: bool = True  # False for a secure value we cannot decrypt offline (text is a placeholder)


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("secure"), str)


def _stack_value(raw: Any, line: int | None, placeholder: str) -> StackValue:
    """object.go ``unmarshalObject`` + ``MarshalString``: what the program will read for this YAML value."""
    if _is_secure(raw):
        return StackValue(placeholder, secure=True, line=line, known=False)
    if isinstance(raw, str):
        return StackValue(raw, line=line)
    if isinstance(raw, (bool, int, float)):
        return StackValue(_go_json(raw), line=line)
    # nil, maps and lists are JSON objects (a secure leaf makes the whole object secure)
    return StackValue(_go_json(raw), secure=_has_secure(raw), object=True, line=line)


def _has_secure(raw: Any) -> bool:
    if _is_secure(raw):
        return True
    if isinstance(raw, dict):
        return any(_has_secure(v) for v in raw.values())
    if isinstance(raw, list):
        return any(_has_secure(v) for v in raw)
    return False


def parse_key(text: str) -> tuple[str, str] | None:
    """key.go ``ParseKey``: ``ns:name`` or the old ``ns:config:name``; None when neither."""
    parts = text.split(":")
    if len(parts) == 2:
        return parts[0], parts[1]
    if len(parts) == 3 and parts[1] == "config" and parts[0] and parts[2]:
        return parts[0], parts[2]
    return None


def _key_error(key: str) -> str:
    return (
        f"could not parse {key} as a configuration key (configuration keys should be of the form `<namespace>:<name>`)"
    )


def read_stack_file(path: Path | str, placeholder: Callable[[str], str] | None = None) -> dict[str, StackValue]:
    """The ``config:`` of a ``Pulumi.<stack>.yaml``: full keys -> values, ``secure:`` ones never decrypted.

    ``placeholder(full_key)`` gives what the program sees for an encrypted value offline (default: one that
    satisfies the DB password rule, so an encrypted ``dbPassword`` plans like the real one).
    """
    path = Path(path)
    doc = _load_yaml(
        path,
        "stack settings",
        "create it with `pulumi stack init <name>` or pass --config FILE (example: --config Pulumi.dev.yaml)",
    )
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise StackFileError(f"{path}: expected a mapping with a 'config:' section, like Pulumi.dev.yaml")
    config = doc.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        line = doc.lines.get("config") if isinstance(doc, _Keyed) else None
        where = f":{line}" if line else ""
        raise StackFileError(f"{path}{where}: 'config:' must be a mapping of keys to values, like Pulumi.dev.yaml")
    lines = config.lines if isinstance(config, _Keyed) else {}
    out: dict[str, StackValue] = {}
    problems = []
    for key, raw in config.items():
        parsed = parse_key(str(key))
        if parsed is None:
            problems.append(f"line {lines.get(key, '?')}: {_key_error(str(key))}, e.g. oci-dblab:adminCidr")
            continue
        full = f"{parsed[0]}:{parsed[1]}"
        try:
            value = _stack_value(raw, lines.get(key), (placeholder or (lambda _k: SECRET_PLACEHOLDER))(full))
        except ValueError as e:
            problems.append(f"line {lines.get(key, '?')}: {full}: {e}")
            continue
        out[full] = value
    if problems:
        raise CliConfigError(problems, str(path))
    return out


def flat_values(config: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> dict[str, StackValue]:
    """Values given as ``PULUMI_CONFIG`` would hold them (full keys -> strings; ``secret_keys`` encrypted),
    e.g. what ``labctl class`` passes to ``set_all_config``. Secret values are known here, so their type is
    checked like the CLI checks decrypted values."""
    secret = set(secret_keys)
    out: dict[str, StackValue] = {}
    for key, value in config.items():
        parsed = parse_key(key)
        if parsed is None:
            raise CliConfigError([_key_error(key)])
        full = f"{parsed[0]}:{parsed[1]}"
        is_object = not isinstance(value, str)
        text = value if isinstance(value, str) else _go_json(value)
        out[full] = StackValue(text, secure=key in secret or full in secret, object=is_object)
    return out


# --- the project file ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigType:
    """One entry of Pulumi.yaml ``config:`` (project.go ``ProjectConfigType``)."""

    key: str
    type: str | None = None
    items: Mapping[str, Any] | None = None
    description: str = ""
    default: Any = _MISSING
    value: Any = _MISSING
    secret: bool = False
    line: int | None = None

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING and self.default is not None

    @property
    def has_value(self) -> bool:
        return self.value is not _MISSING and self.value is not None


@dataclass(frozen=True)
class Project:
    name: str
    path: Path
    config: dict[str, ConfigType] = field(default_factory=dict)
    backend_url: str | None = None

    def full_key(self, key: str) -> tuple[str, str]:
        """config.go ``parseConfigKey``: a key without a namespace belongs to the project."""
        if ":" in key:
            parsed = parse_key(key)
            if parsed is None:
                raise CliConfigError([_key_error(key)], str(self.path))
            return parsed
        return self.name, key


_SIMPLE_TYPES = ("string", "integer", "boolean", "array", "object")
_TYPE_KEYS = {"type", "items", "description", "secret", "default", "value"}


def _items_type(items: Any) -> Mapping[str, Any] | None:
    return items if isinstance(items, Mapping) else None


def full_type_name(type_name: str, items: Mapping[str, Any] | None) -> str:
    """project.go ``InferFullTypeName``: ``array<string>`` and so on."""
    if items is not None:
        return f"array<{full_type_name(str(items.get('type', '')), _items_type(items.get('items')))}>"
    return type_name


def validate_value(type_name: str, items: Mapping[str, Any] | None, value: Any) -> bool:
    """project.go ``ValidateConfigValue`` (``value`` as Go sees it: str, int, float, bool, list, dict)."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return value == math.trunc(value) if math.isfinite(value) else False
        if isinstance(value, str):  # strconv.Atoi
            return re.fullmatch(r"[+-]?[0-9]+", value) is not None and -(2**63) <= int(value) < 2**63
        return False
    if type_name == "boolean":
        return value in ("true", "false") if isinstance(value, str) else isinstance(value, bool)
    if type_name == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or items is None:
        return False
    sub = _items_type(items.get("items"))
    return all(validate_value(str(items.get("type", "")), sub, v) for v in value)


def _is_primitive(value: Any) -> bool:
    """config.go ``isPrimitiveValue`` (string, int, bool; a float is not)."""
    return isinstance(value, (str, bool, int)) and not isinstance(value, float)


_PROJECTS: dict[tuple[str, str], Project] = {}  # (path, sha256 of the text) -> Project: a class plans 40 stacks


def load_project(project_dir: Path | str) -> Project:
    """Read and check ``Pulumi.yaml`` (or ``.yml``) the way the CLI does before it looks at any stack."""
    project_dir = Path(project_dir)
    path = project_dir / "Pulumi.yaml"
    if not path.exists() and (project_dir / "Pulumi.yml").exists():
        path = project_dir / "Pulumi.yml"
    if not path.exists():
        raise StackFileError(f"no Pulumi.yaml in {project_dir}; run labctl in the project folder (or --project-dir)")
    key: tuple[str, str] | None = None  # not a small regular file: _read_project says why
    try:
        if path.is_file() and path.stat().st_size <= 1024 * 1024:
            key = (str(path.resolve()), hashlib.sha256(path.read_bytes()).hexdigest())
    except OSError:
        pass
    if key is not None and key in _PROJECTS:
        return _PROJECTS[key]
    project = _read_project(path)
    if key is not None:
        _PROJECTS[key] = project
    return project


def _read_project(path: Path) -> Project:
    doc = _load_yaml(path, "project", "run labctl in the project folder, the one with Pulumi.yaml")
    if not isinstance(doc, dict):
        raise StackFileError(f"{path}: expected a mapping with name, runtime and config")
    name = doc.get("name")
    if not name:
        raise CliConfigError(["project is missing a 'name' attribute"], str(path))
    name = str(name)
    backend = doc.get("backend")
    backend_url = backend.get("url") if isinstance(backend, dict) else None
    raw_config = doc.get("config") or {}
    if not isinstance(raw_config, dict):
        raise CliConfigError(["'config' must be a mapping of keys to declarations"], str(path))
    lines = raw_config.lines if isinstance(raw_config, _Keyed) else {}
    problems: list[str] = []
    config: dict[str, ConfigType] = {}
    for key, spec in raw_config.items():
        key = str(key)
        line = lines.get(key)
        at = f"line {line}: " if line else ""
        by_project = ":" not in key or key.startswith(f"{name}:")
        # project.go RewriteShorthandConfigValues: `key: value` is a default (project keys) or a value (others)
        if spec is None or not isinstance(spec, dict):
            if _is_primitive(spec) or isinstance(spec, list):
                spec = {"default": spec} if by_project else {"value": spec}
            else:
                problems.append(f"{at}config '{key}' must be a value or a mapping with type, description, default")
                continue
        unknown = sorted(set(map(str, spec)) - _TYPE_KEYS)
        if unknown:
            problems.append(f"{at}config '{key}' has unknown attribute(s) {', '.join(unknown)} (project.json)")
            continue
        ctype = ConfigType(
            key=key,
            type=None if spec.get("type") is None else str(spec.get("type")),
            items=_items_type(spec.get("items")),
            description=str(spec.get("description") or ""),
            default=spec.get("default", _MISSING),
            value=spec.get("value", _MISSING),
            secret=spec.get("secret") is True,
            line=line,
        )
        problems += [f"{at}{p}" for p in _check_declaration(ctype, by_project)]
        config[key] = ctype
    if problems:
        raise CliConfigError(problems, str(path))
    return Project(name=name, path=path, config=config, backend_url=backend_url)


def _check_declaration(c: ConfigType, by_project: bool) -> list[str]:
    """project.go ``(*Project).Validate`` for one config key, in its words."""
    if c.has_default and c.has_value:
        return [f"project config '{c.key}' cannot have both a 'default' and 'value' attribute"]
    if c.type is not None and c.type not in _SIMPLE_TYPES:
        return [f"config '{c.key}' has type '{c.type}'; project.json allows {', '.join(_SIMPLE_TYPES)}"]
    if by_project:
        if c.type == "array" and c.items is None:
            return [
                f"The configuration key '{c.key}' declares an array but does not specify the underlying type via "
                "the 'items' attribute"
            ]
        if c.type is not None and c.has_default and not validate_value(c.type, c.items, c.default):
            return [
                f"The default value specified for configuration key '{c.key}' is not of the expected type "
                f"'{full_type_name(c.type, c.items)}'"
            ]
        return []
    if c.type is not None:
        return [f"Configuration key '{c.key}' is not namespaced by the project and should not define a type"]
    if c.has_default:
        return [
            f"Configuration key '{c.key}' is not namespaced by the project and should not define a default value. "
            "Did you mean to use the 'value' attribute instead of 'default'?"
        ]
    if not c.has_value:
        return [f"Configuration key '{c.key}' is namespaced and must provide an attribute 'value'"]
    return []


# --- the merge -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MergedConfig:
    """The config the program receives: ``values`` as ``PULUMI_CONFIG`` (full keys -> strings), ``secret_keys``
    as ``PULUMI_CONFIG_SECRET_KEYS``; ``defaults_applied`` lists the project keys filled from Pulumi.yaml."""

    stack: str
    project: str
    values: dict[str, str]
    secret_keys: tuple[str, ...]
    defaults_applied: tuple[str, ...] = ()
    source: str = ""

    def short(self) -> dict[str, str]:
        """The project's own keys without the ``<project>:`` prefix (what ``parse_config`` takes)."""
        prefix = f"{self.project}:"
        return {k[len(prefix) :]: v for k, v in self.values.items() if k.startswith(prefix)}

    def short_secret_keys(self) -> frozenset[str]:
        prefix = f"{self.project}:"
        return frozenset(k[len(prefix) :] for k in self.secret_keys if k.startswith(prefix))


def format_missing_keys(keys: list[str]) -> str:
    """config.go ``formatMissingKeys``: 'a', 'b' and 'c' (sorted)."""
    if len(keys) == 1:
        return f"'{keys[0]}'"
    keys = sorted(keys)
    return ", ".join(f"'{k}'" for k in keys[:-1]) + f" and '{keys[-1]}'"


def missing_keys_error(keys: list[str], stack: str) -> str:
    """config.go ``missingStackConfigurationKeysError``."""
    noun = "values" if len(keys) > 1 else "value"
    return f"Stack '{stack}' is missing configuration {noun} {format_missing_keys(keys)}"


def _default_value(value: Any) -> StackValue:
    """config.go ``createConfigValue``: primitives formatted with %v, anything else as a JSON object."""
    if isinstance(value, bool):
        return StackValue("true" if value else "false")
    if _is_primitive(value):
        return StackValue(str(value))
    return StackValue(_go_json(value), object=True)


def merge_config(
    project: Project,
    stack_values: Mapping[str, StackValue],
    stack: str,
    source: str = "",
) -> MergedConfig:
    """config.go ``mergeConfig`` with validate=true (what ``pulumi up``/``preview`` run), then
    ``validateStackConfigValues``. Raises ``CliConfigError`` with the CLI's words; values are never shown."""
    merged = dict(stack_values)
    missing: list[str] = []
    applied: list[str] = []
    for key in sorted(project.config):
        ctype = project.config[key]
        ns, name = project.full_key(key)
        full = f"{ns}:{name}"
        if full in merged:
            continue
        if not ctype.has_value and not ctype.has_default:
            if ns == project.name:
                missing.append(key)
            continue
        merged[full] = _default_value(ctype.default if ctype.has_default else ctype.value)
        applied.append(full)
    where = source or str(project.path)
    if missing:
        raise CliConfigError(
            [
                f"{missing_keys_error(missing, stack)}. Set {'them' if len(missing) > 1 else 'it'} with "
                f"`pulumi config set <key> <value>` (described in {project.path.name})"
            ],
            where,
        )
    problems: list[str] = []
    for key in sorted(project.config):
        ctype = project.config[key]
        if ctype.type is None:
            continue
        ns, name = project.full_key(key)
        value = merged.get(f"{ns}:{name}", StackValue(""))
        at = f"line {value.line}: " if value.line else ""
        if ctype.secret and not value.secure:
            problems.append(
                f"{at}Stack '{stack}' with configuration key '{key}' must be encrypted as it's secret "
                f"(pulumi config set --secret {key} …)"
            )
            continue
        if not value.known:
            continue  # encrypted; the CLI checks the decrypted value, which we never see
        content: Any = value.text
        if value.object:
            try:
                content = json.loads(value.text)
            except json.JSONDecodeError:
                problems.append(f"{at}Stack '{stack}' with configuration key '{key}' is not valid JSON")
                continue
        if not validate_value(ctype.type, ctype.items, content):
            problems.append(
                f"{at}Stack '{stack}' with configuration key '{key}' must be of type "
                f"'{full_type_name(ctype.type, ctype.items)}'"
            )
    if problems:
        raise CliConfigError(problems, where)
    return MergedConfig(
        stack=stack,
        project=project.name,
        values={k: v.text for k, v in merged.items()},
        secret_keys=tuple(sorted(k for k, v in merged.items() if v.secure)),
        defaults_applied=tuple(applied),
        source=where,
    )


def load_stack(
    stack: str = "dev",
    project_dir: Path | str = ".",
    config_file: Path | str | None = None,
    placeholder: Callable[[str], str] | None = None,
) -> MergedConfig:
    """``Pulumi.yaml`` + ``Pulumi.<stack>.yaml`` (or ``config_file``) merged and checked as ``pulumi up`` would."""
    project = load_project(project_dir)
    path = Path(config_file) if config_file else stack_file(Path(project_dir), stack)
    return merge_config(project, read_stack_file(path, placeholder), stack, source=str(path))


def for_program(
    config: Mapping[str, Any], secret_keys: Iterable[str], stack: str, project_dir: Path | str
) -> MergedConfig:
    """A ``PULUMI_CONFIG``-like map merged with the project file, as the CLI would before running the program."""
    return merge_config(load_project(project_dir), flat_values(config, secret_keys), stack, source=f"stack '{stack}'")


# --- the state backend -----------------------------------------------------------------------------------------
def backend_url(project: Project, environ: Mapping[str, str], stored: str | None = None) -> tuple[str | None, str]:
    """Which backend a `pulumi` command run in the project folder uses, and why (pkg/workspace/creds.go
    ``GetCurrentCloudURLWithSource``): PULUMI_BACKEND_URL, then Pulumi.yaml ``backend.url``, then the URL
    ``pulumi login`` stored."""
    if environ.get("PULUMI_BACKEND_URL"):
        return environ["PULUMI_BACKEND_URL"], "env"
    if project.backend_url:
        return project.backend_url, "project"
    return (stored, "credentials") if stored else (None, "none")


def file_backend_dir(url: str, cwd: Path | str, home: Path | str | None = None) -> Path:
    """The folder a ``file://`` backend URL names (pkg/backend/diy/backend.go ``massageBlobPath``: the prefix and
    query stripped, ``~`` expanded, then ``filepath.Abs``, i.e. relative to the directory pulumi runs in)."""
    if not url.startswith("file://"):
        raise ValueError(f"{url} is not a file:// backend URL")
    path = url[len("file://") :].split("?")[0]
    if path.startswith("~"):
        base = Path(home) if home is not None else Path.home()
        path = str(base) if path == "~" else str(base / path[2:])
    return Path(cwd, path).resolve() if not Path(path).is_absolute() else Path(path)
