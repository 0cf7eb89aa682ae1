"""Reading the files a user hands labctl (rosters, class.yaml, stack files): one clear message, never a traceback.

``read_input_file`` refuses what is not a readable, regular, UTF-8 text file of a sane size. ``load_yaml`` is a
strict YAML reader for hand-written config:

- duplicate keys are an error naming both lines (PyYAML silently keeps the last one);
- anchors and aliases may not expand past ``MAX_YAML_NODES`` nodes (a "billion laughs" file), nor refer to
  themselves;
- plain (unquoted) values that YAML 1.1 would silently convert are refused with a hint to quote them: ``off``/
  ``yes``/``on``/``no`` (booleans other than true/false), numbers with leading zeros (``010`` is octal 8), with
  ``_``, ``0x``/``0o``/``0b`` prefixes or sexagesimal ``1:30``, and empty values (which become null, and then the
  string ``None``/``null`` in a config);
- keys must be plain strings (``on:`` would be the boolean True).

PyYAML implements YAML 1.1 (pyyaml.org/wiki/PyYAMLDocumentation, "YAML 1.1"), where ``yes``/``no``/``on``/``off``
are booleans and a leading ``0`` means octal (yaml.org/type/bool.html, yaml.org/type/int.html).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_INPUT_BYTES = 1024 * 1024  # 1 MiB: a roster of ~2,500 students with long RSA keys
MAX_YAML_NODES = 10_000  # nodes after expanding aliases; a class.yaml or stack file has well under 200

BOOL_OK = frozenset({"true", "false"})
DECIMAL_RE = re.compile(r"[-+]?(?:0|[1-9][0-9]*)\Z")
FLOAT_OK_RE = re.compile(r"[-+]?(?:[0-9]*\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?\Z")


class InputFileError(ValueError):
    """A file labctl cannot use, with the file (and line) named."""

    def __init__(self, source: str, message: str, line: int = 0) -> None:
        self.source = source
        self.line = line
        self.problem = message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")


def read_input_file(path: str | Path, what: str, example: str, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The text of ``path`` (UTF-8, a BOM dropped), or ``InputFileError`` saying why it cannot be used.

    ``what`` names the file's role ("roster", "class config"); ``example`` is shown when the file is missing.
    """
    p = Path(path)
    src = str(p)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputFileError(src, f"no such file ({what}); {example}") from None
    except PermissionError:
        raise InputFileError(src, f"the {what} file cannot be read (permission denied on a parent directory)") from None
    except OSError as e:
        raise InputFileError(src, f"the {what} file cannot be read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputFileError(src, f"is a directory, not a {what} file; give the file inside it. {example}")
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(src, f"is not a regular file (a device, pipe or socket); give a {what} file")
    if st.st_size > max_bytes:
        raise InputFileError(
            src, f"is {st.st_size:,} bytes, over the {max_bytes:,}-byte limit for a {what} file; is it the right file?"
        )
    try:
        # O_NONBLOCK: a file swapped for a FIFO after the stat() above must not hang us
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            data = f.read(max_bytes + 1)
    except PermissionError:
        raise InputFileError(src, f"the {what} file cannot be read (permission denied)") from None
    except OSError as e:
        raise InputFileError(src, f"the {what} file cannot be read ({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise InputFileError(src, f"is over the {max_bytes:,}-byte limit for a {what} file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputFileError(
            src,
            f"is not UTF-8 text (byte 0x{data[e.start]:02x}); save it as UTF-8 (spreadsheets: 'CSV UTF-8')",
            line,
        ) from None


# --- strict YAML --------------------------------------------------------------------------------------------
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


def _yaml_1_1_problem(node: yaml.ScalarNode, is_key: bool) -> str | None:
    """Why a plain scalar would not mean what it looks like, or None."""
    if node.style not in (None, ""):  # quoted, literal or folded: a string as written
        return None
    text = node.value
    tag = node.tag
    if is_key:
        if tag in (_STR, _MERGE):
            return None
        return f"the key '{text}' would be read as {tag.rsplit(':', 1)[-1]}, not as text; quote it: \"{text}\""
    if tag == _BOOL and text.lower() not in BOOL_OK:
        value = yaml.SafeLoader.bool_values.get(text.lower())
        return (
            f"'{text}' would be read as the boolean {str(value).lower()} (YAML 1.1); write true/false, "
            f'or quote it if you mean the text: "{text}"'
        )
    if tag == _INT and not DECIMAL_RE.match(text):
        return (
            f"'{text}' would be read as a different number (YAML 1.1: a leading 0 is octal, '_' is ignored, "
            f'0x/0b are hex/binary, a:b is base 60); write it without them, or quote it: "{text}"'
        )
    if tag == _FLOAT and not FLOAT_OK_RE.match(text) and text.lower() not in (".inf", "-.inf", "+.inf", ".nan"):
        return f"'{text}' would be read as an unexpected number (YAML 1.1); quote it: \"{text}\""
    if tag == _NULL:
        if text == "":
            return (
                'the value is empty (YAML reads it as null); give a value, quote an empty text (""), or remove the key'
            )
        return f"'{text}' is null in YAML; give a value or remove the key"
    return None


def _check_tree(root: yaml.Node, source: str, max_nodes: int) -> None:
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise InputFileError(
                source,
                "an alias refers to the mapping or list that contains it; YAML loops are not allowed",
                node.start_mark.line + 1,
            )
        active.add(key)
        n = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    why = _yaml_1_1_problem(k, True)
                    if why:
                        raise InputFileError(source, why, k.start_mark.line + 1)
                    if k.tag != _MERGE:
                        if k.value in seen:
                            raise InputFileError(
                                source,
                                f"key '{k.value}' appears twice (lines {seen[k.value]} and {k.start_mark.line + 1}); "
                                "YAML would silently keep the last one. Keep one of them",
                                k.start_mark.line + 1,
                            )
                        seen[k.value] = k.start_mark.line + 1
                else:
                    raise InputFileError(
                        source, "a key must be plain text, not a list or mapping", k.start_mark.line + 1
                    )
                n += size(k) + size(v)
                if n > max_nodes:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                n += size(item)
                if n > max_nodes:
                    break
        elif isinstance(node, yaml.ScalarNode):
            why = _yaml_1_1_problem(node, False)
            if why:
                raise InputFileError(source, why, node.start_mark.line + 1)
        active.discard(key)
        if n > max_nodes:
            raise InputFileError(
                source,
                f"expands to more than {max_nodes:,} values (anchors and aliases repeated); a config file this size "
                "is a mistake or an attack (a 'YAML bomb')",
                node.start_mark.line + 1,
            )
        sizes[key] = n
        return n

    size(root)


def load_yaml(text: str, source: str, max_nodes: int = MAX_YAML_NODES) -> Any:
    """Parse one YAML document strictly (see the module docstring). ``None`` for an empty document."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = mark.line + 1 if mark else 0
            raise InputFileError(source, f"is not valid YAML: {e.problem or e.context}", line) from None
        except yaml.YAMLError as e:
            raise InputFileError(source, f"is not valid YAML: {e}") from None
        if node is None:
            return None
        _check_tree(node, source, max_nodes)
        try:
            return loader.construct_document(node)
        except yaml.YAMLError as e:
            raise InputFileError(source, f"is not valid YAML: {e}") from None
    finally:
        loader.dispose()
