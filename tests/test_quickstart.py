"""The README's quick starts: bash and PowerShell, English and Bahasa Indonesia, typed on a fresh clone, no make.

The Pulumi CLI cannot run here, so this proves what can be proven without it: the four blocks give the same
commands in the same order, that order works on a fresh clone (the passphrase before `stack init`, the stack before
`config set`, `preview` before `up`, nothing that needs `make` or an existing `.venv`), every key set is one the
program knows, the state folder the backend needs ships with the clone, and bash parses the bash blocks.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml
from conftest import ROOT

from components.config import DEFAULTS

README = (ROOT / "README.md").read_text()


def section(title_start: str) -> str:
    start = README.index(f"\n## {title_start}")
    end = README.find("\n## ", start + 4)
    return README[start : end if end != -1 else len(README)]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def commands(block: str) -> list[str]:
    """Each line without its trailing comment and with whitespace collapsed."""
    out = []
    for line in block.splitlines():
        code = re.split(r"\s+#\s", line, maxsplit=1)[0].strip()
        if code:
            out.append(" ".join(code.split()))
    return out


def skeleton(cmds: list[str]) -> list[str]:
    """The shell-independent shape: program + subcommand + first argument (values differ by shell)."""
    shape = []
    for c in cmds:
        if c.startswith(("export ", "$env:")):
            shape.append("set " + re.split(r"[ =]", c.replace("$env:", "").replace("export ", ""))[0])
        else:
            n = 4 if c.startswith("pulumi config set") else 3 if c.startswith("pulumi ") else 2
            shape.append(" ".join(c.split()[:n]))
    return shape


EN = section("Quick start, command by command")
ID = section("Mulai cepat (Bahasa Indonesia)")
QUICKSTARTS = {
    "en-bash": blocks(EN, "bash"),
    "en-powershell": blocks(EN, "powershell"),
    "id-bash": blocks(ID, "bash"),
    "id-powershell": blocks(ID, "powershell"),
}


@pytest.mark.parametrize("name", sorted(QUICKSTARTS))
def test_each_quick_start_has_exactly_one_block(name: str):
    assert len(QUICKSTARTS[name]) == 1, f"{name}: expected one code block"


def test_all_four_quick_starts_give_the_same_commands_in_the_same_order():
    shapes = {name: skeleton(commands(b[0])) for name, b in QUICKSTARTS.items()}
    first = shapes["en-bash"]
    for name, shape in shapes.items():
        assert shape == first, f"{name} differs from en-bash:\n{shape}\n{first}"


def test_the_order_works_on_a_fresh_clone_without_make():
    cmds = commands(QUICKSTARTS["en-bash"][0])
    shape = skeleton(cmds)

    def at(prefix: str) -> int:
        return next(i for i, s in enumerate(shape) if s.startswith(prefix))

    assert shape[0] == "git clone" and shape[1].startswith("cd ")
    assert at("set PULUMI_CONFIG_PASSPHRASE") < at("pulumi stack init") < at("pulumi config")
    assert "--secrets-provider passphrase" in cmds[at("pulumi stack init")]
    assert max(i for i, s in enumerate(shape) if s.startswith("pulumi config")) < at("pulumi preview") < at("pulumi up")
    assert at("pulumi up") < at("pulumi stack output") < at("pulumi destroy")
    for name, b in QUICKSTARTS.items():
        text = " ".join(commands(b[0]))
        assert "make" not in text.split() and ".venv" not in text and "pulumi login" not in text, name


def test_every_key_set_is_known_and_the_three_required_ones_are_set():
    for name, b in QUICKSTARTS.items():
        keys = [c.split()[3] for c in commands(b[0]) if c.startswith("pulumi config set")]
        own = {k for k in keys if ":" not in k}
        assert own <= set(DEFAULTS), f"{name}: unknown keys {own - set(DEFAULTS)}"
        assert {"compartmentId", "sshPublicKey", "adminCidr"} <= own and "oci:region" in keys, name


def test_the_backend_folder_ships_with_the_clone_and_pulumi_yaml_points_at_it():
    # Pulumi's file backend opens an existing directory only (gocloud fileblob openBucket: os.Stat, no create_dir).
    assert yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["backend"]["url"] == "file://.pulumi-state"
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", ".pulumi-state"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked, "a fresh clone must contain .pulumi-state/ (a tracked file inside it)"
    assert (ROOT / "requirements.txt").is_file()  # what Pulumi's pip toolchain installs on the first preview


@pytest.mark.parametrize("name", ["en-bash", "id-bash"])
def test_bash_parses_the_bash_blocks_once_placeholders_are_filled(name: str, tmp_path):
    bash = shutil.which("bash")
    assert bash, "bash is needed to check the bash quick starts"
    script = QUICKSTARTS[name][0]
    filled = re.sub(r"<[a-z-]+>", "x", script)
    assert filled != script  # the placeholders are there, and would be a syntax error as typed
    (tmp_path / "qs.sh").write_text(filled)
    proc = subprocess.run([bash, "-n", str(tmp_path / "qs.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "raw.sh").write_text(script)
    assert subprocess.run([bash, "-n", str(tmp_path / "raw.sh")], capture_output=True).returncode != 0


def test_both_languages_say_where_the_state_lives_and_how_secrets_are_encrypted():
    for text, words in (
        (EN, ("Where the state lives", "How secrets are encrypted", ".pulumi-state", "PULUMI_CONFIG_PASSPHRASE")),
        (ID, ("Di mana state disimpan", "Bagaimana secret dienkripsi", ".pulumi-state", "PULUMI_CONFIG_PASSPHRASE")),
    ):
        for w in words:
            assert w in text or w in README, w
