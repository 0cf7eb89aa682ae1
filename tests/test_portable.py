"""components/portable.py: every platform branch, the Windows ones by injecting the platform (never skipped)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path, PureWindowsPath
from types import SimpleNamespace

import pytest
from conftest import ROOT

from components import portable
from components.portable import (
    Interrupts,
    LockHeld,
    PrivateFileWarning,
    UnsafePathError,
    atomic_write_text,
    config_path,
    default_ssh_key_paths,
    ensure_private_dir,
    exclusive_lock,
    remove_file_no_follow,
    write_private_file,
)

WIN = "win32"


HOST_IS_WINDOWS = sys.platform == "win32"


def mode_of(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def assert_only_owner(p: Path, mode: int) -> None:
    """POSIX host: exactly ``mode``. Windows host (the CI matrix): icacls lists one ACE, the current user's."""
    if not HOST_IS_WINDOWS:
        assert mode_of(p) == mode
        return
    out = subprocess.run(["icacls", str(p)], capture_output=True, text=True, check=True).stdout
    aces = [ln.strip() for ln in out.replace(str(p), "").splitlines() if ":(" in ln]
    assert len(aces) == 1 and portable.current_windows_account().split("\\")[-1].lower() in aces[0].lower(), out


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


# --- private files ------------------------------------------------------------------------------------------


def test_private_file_is_0600_replaces_a_world_readable_file_and_returns_the_resolved_path(tmp_path: Path):
    target = tmp_path / "sub" / ".env"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o644)
    got = write_private_file(tmp_path / "sub" / ".." / "sub" / ".env", "DB_PASSWORD='x'\n")
    assert got == target.resolve()
    assert target.read_text() == "DB_PASSWORD='x'\n"
    assert_only_owner(target, 0o600)
    assert leftovers(target.parent) == []


def test_private_file_refuses_a_symlink_and_leaves_its_target_alone(tmp_path: Path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / ".env"
    link.symlink_to(victim)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        write_private_file(link, "secret")
    assert victim.read_text() == "precious" and link.is_symlink()
    assert leftovers(tmp_path) == []


def test_private_file_refuses_a_directory_with_an_example(tmp_path: Path):
    (tmp_path / "envdir").mkdir()
    with pytest.raises(UnsafePathError, match=r"is a directory.*e\.g\. .*envdir/\.env"):
        write_private_file(tmp_path / "envdir", "secret")


def test_a_failed_replace_keeps_the_old_content_and_no_temp_file(tmp_path: Path, monkeypatch):
    target = tmp_path / "state.json"
    target.write_text("old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(portable.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_atomic_write_text_uses_the_given_mode_and_refuses_links(tmp_path: Path):
    out = atomic_write_text(tmp_path / "report.md", "# hi\n", mode=0o640)
    assert out.read_text() == "# hi\n" and (HOST_IS_WINDOWS or mode_of(out) == 0o640)  # no mode bits on Windows
    (tmp_path / "link.md").symlink_to(out)
    with pytest.raises(UnsafePathError):
        atomic_write_text(tmp_path / "link.md", "x")
    assert out.read_text() == "# hi\n"


def fake_icacls(bin_dir: Path, log: Path, exit_code: int = 0) -> None:
    """An `icacls` on PATH that records its arguments and the file's size when it is called."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "fake_icacls.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, os, sys
            with open({str(log)!r}, "a") as f:
                f.write(json.dumps({{"args": sys.argv[1:], "size": os.path.getsize(sys.argv[1])}}) + "\\n")
            if {exit_code}:
                print("Access is denied.", file=sys.stderr)
            sys.exit({exit_code})
            """
        )
    )
    if HOST_IS_WINDOWS:  # found through PATHEXT before System32's icacls.exe, as bin_dir comes first on PATH
        (bin_dir / "icacls.cmd").write_text(f'@"{sys.executable}" "{script}" %*\r\n')
    else:
        exe = bin_dir / "icacls"
        exe.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{script}' \"$@\"\n")
        exe.chmod(0o755)


def test_windows_branch_sets_a_user_only_acl_on_the_temp_file_before_the_secret_is_written(tmp_path, monkeypatch):
    import json

    log = tmp_path / "icacls.log"
    fake_icacls(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("USERNAME", "ana")
    monkeypatch.setenv("USERDOMAIN", "LAPTOP-7")
    lab = tmp_path / "lab"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # success must not warn
        got = write_private_file(lab / ".env", "DB_PASSWORD='s3cret'\n", platform=WIN)
    assert got.read_text() == "DB_PASSWORD='s3cret'\n"
    [call] = [json.loads(line) for line in log.read_text().splitlines()]
    target, *flags = call["args"]
    assert Path(target).parent == lab and Path(target).name.startswith("..env.") and target.endswith(".tmp")
    assert flags == ["/inheritance:r", "/grant:r", "LAPTOP-7\\ana:F", "/q"]
    assert call["size"] == 0  # restricted while still empty: the secret never sat in a readable file
    assert leftovers(lab) == []


def test_windows_branch_warns_clearly_when_icacls_fails_or_is_missing(tmp_path, monkeypatch):
    fake_icacls(tmp_path / "bin", tmp_path / "log", exit_code=5)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("USERNAME", "ana")
    monkeypatch.delenv("USERDOMAIN", raising=False)
    with pytest.warns(PrivateFileWarning, match=r"could not limit .* to ana \(icacls exited 5: Access is denied"):
        got = write_private_file(tmp_path / ".env", "x", platform=WIN)
    assert got.read_text() == "x"

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.warns(PrivateFileWarning, match=r"icacls was not found on PATH.*icacls \".*\" /inheritance:r"):
        write_private_file(tmp_path / ".env", "y", platform=WIN)
    assert (tmp_path / ".env").read_text() == "y"


def test_windows_junctions_count_as_links_but_only_on_windows():
    junction = SimpleNamespace(st_mode=stat.S_IFDIR | 0o755, st_file_attributes=portable.FILE_ATTRIBUTE_REPARSE_POINT)
    assert portable._is_link(junction, WIN) is True
    assert portable._is_link(junction, "linux") is False
    plain = SimpleNamespace(st_mode=stat.S_IFREG | 0o644, st_file_attributes=0x20)
    assert portable._is_link(plain, WIN) is False


def test_reading_never_follows_a_link_with_or_without_o_nofollow(tmp_path: Path, monkeypatch):
    real = tmp_path / "known_hosts"
    real.write_text("k\n")
    link = tmp_path / "kh-link"
    link.symlink_to(real)
    assert portable.read_text_no_follow(real) == "k\n"
    with pytest.raises(UnsafePathError):
        portable.read_text_no_follow(link)  # O_NOFOLLOW → ELOOP
    with pytest.raises(UnsafePathError):
        portable.read_text_no_follow(link, platform=WIN)  # the lstat branch
    monkeypatch.delattr(portable.os, "O_NOFOLLOW", raising=False)  # an OS without it (Windows)
    with pytest.raises(UnsafePathError):
        portable.read_text_no_follow(link)


# --- removal and directories ----------------------------------------------------------------------------


def test_remove_file_no_follow_removes_files_and_leaves_links_and_directories(tmp_path: Path):
    f = tmp_path / ".env"
    f.write_text("x")
    assert remove_file_no_follow(f) is True and not f.exists()
    assert remove_file_no_follow(f) is False

    target = tmp_path / "target"
    target.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.warns(PrivateFileWarning, match="symbolic link"):
        assert remove_file_no_follow(link) is False
    assert link.is_symlink() and target.read_text() == "keep"
    (tmp_path / "d").mkdir()
    with pytest.warns(PrivateFileWarning, match="directory"):
        assert remove_file_no_follow(tmp_path / "d") is False


def test_ensure_private_dir_is_0700_and_refuses_a_link(tmp_path: Path):
    d = ensure_private_dir(tmp_path / "a" / "b")
    assert d.is_dir()
    if not HOST_IS_WINDOWS:
        assert mode_of(d) == 0o700
        (tmp_path / "a" / "b").chmod(0o755)
        assert mode_of(ensure_private_dir(tmp_path / "a" / "b")) == 0o700
    (tmp_path / "ln").symlink_to(d)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        ensure_private_dir(tmp_path / "ln")
    (tmp_path / "file").write_text("")
    with pytest.raises(UnsafePathError, match="not a directory"):
        ensure_private_dir(tmp_path / "file")


# --- locks --------------------------------------------------------------------------------------------------

HOLDER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from components.portable import exclusive_lock
with exclusive_lock(Path(sys.argv[1]), what="class run"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def start_holder(lock: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock), str(ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_is_refused_with_the_holders_pid_and_the_lock_file(tmp_path: Path):
    lock = tmp_path / "run" / "class.lock"
    proc = start_holder(lock)
    try:
        with pytest.raises(LockHeld) as err:
            with exclusive_lock(lock, what="class run"):
                pytest.fail("acquired a lock another process holds")
        assert err.value.pid == proc.pid
        assert f"class run is in use by PID {proc.pid} (lock file {lock})" in str(err.value)
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    with exclusive_lock(lock, what="class run"):  # released: free again, our PID recorded
        assert portable.read_holder_pid(lock) == os.getpid()
    assert not portable.holder_file(lock).exists()


def test_a_killed_holder_never_leaves_a_stale_lock(tmp_path: Path):
    lock = tmp_path / "class.lock"
    proc = start_holder(lock)
    proc.kill()
    proc.wait(timeout=30)
    with exclusive_lock(lock, what="class run"):  # the OS dropped the lock with the process
        pass


def test_the_lock_is_exclusive_within_one_process_too(tmp_path: Path):
    lock = tmp_path / "x.lock"
    with exclusive_lock(lock, what="state"):
        with pytest.raises(LockHeld, match=rf"state is in use by PID {os.getpid()}"):
            with exclusive_lock(lock, what="state"):
                pass


# --- interrupts ---------------------------------------------------------------------------------------------


def test_first_signal_requests_a_stop_second_aborts_and_handlers_are_restored():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    seen: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with Interrupts(on_first=seen.append) as irq:
            signal.raise_signal(signal.SIGTERM)
            assert irq.requested and irq.signal_name == "SIGTERM" and seen == ["SIGTERM"]
            signal.raise_signal(signal.SIGINT)
            pytest.fail("the second signal must abort")
    assert {s: signal.getsignal(s) for s in before} == before


def test_second_signal_callback_replaces_the_default_abort():
    seconds: list[str] = []
    with Interrupts(on_second=seconds.append) as irq:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
    assert irq.requested and irq.count == 2 and seconds == ["SIGINT"]


def test_signal_sets_per_platform_use_no_posix_only_signals():
    assert portable.interrupt_signal_names(WIN) == ("SIGINT", "SIGTERM", "SIGBREAK")
    assert portable.interrupt_signal_names("darwin") == ("SIGINT", "SIGTERM")
    # On this (non-Windows) host SIGBREAK does not exist: it is skipped, not assumed.
    names = [n for n, _ in Interrupts(platform=WIN).signals()]
    assert names == [n for n in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, n)]


def test_interrupts_refuse_a_worker_thread():
    errors: list[BaseException] = []

    def worker():
        try:
            with Interrupts():
                pass
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert errors and "main thread" in str(errors[0])


# --- paths --------------------------------------------------------------------------------------------------


def test_default_ssh_keys_on_windows_live_under_userprofile(monkeypatch):
    monkeypatch.setenv("USERPROFILE", r"C:\Users\ana")
    keys = default_ssh_key_paths(platform=WIN)
    assert [str(k) for k in keys] == [
        r"C:\Users\ana\.ssh\id_ed25519",
        r"C:\Users\ana\.ssh\id_ecdsa",
        r"C:\Users\ana\.ssh\id_rsa",
    ]
    monkeypatch.delenv("USERPROFILE")
    monkeypatch.setenv("HOMEDRIVE", "D:")
    monkeypatch.setenv("HOMEPATH", r"\Users\budi")
    assert str(default_ssh_key_paths(platform=WIN)[0]) == r"D:\Users\budi\.ssh\id_ed25519"


def test_default_ssh_keys_on_posix_follow_home(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_ssh_key_paths(platform="darwin") == [tmp_path / ".ssh" / n for n in portable.SSH_KEY_NAMES]
    assert default_ssh_key_paths(home=Path("/home/x"), platform="linux")[2] == Path("/home/x/.ssh/id_rsa")
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text("k")
    assert portable.existing_ssh_keys(platform="linux") == [tmp_path / ".ssh" / "id_rsa"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"C:\Users\ana\lab\.env", r"C:\Users\ana\lab\.env"),
        ("C:/Users/ana/lab/.env", r"C:\Users\ana\lab\.env"),
        (r"~\.ssh\id_ed25519", r"C:\Users\ana\.ssh\id_ed25519"),
        ("~/.ssh/id_ed25519", r"C:\Users\ana\.ssh\id_ed25519"),
        (r"lab\.env", r"C:\work\oci-dblab\lab\.env"),
        (r"\\fs01\home\ana\.env", r"\\fs01\home\ana\.env"),
    ],
)
def test_config_paths_read_the_windows_way_on_windows(text: str, expected: str):
    got = config_path(text, platform=WIN, home=r"C:\Users\ana", base=r"C:\work\oci-dblab")
    assert isinstance(got, PureWindowsPath) and str(got) == expected


def test_config_paths_on_posix_keep_backslashes_as_name_characters():
    got = config_path(r"lab\.env", platform="linux", home="/home/ana", base="/srv/lab")
    assert str(got) == r"/srv/lab/lab\.env"
    assert str(config_path("~/.ssh/k", platform="linux", home="/home/ana")) == "/home/ana/.ssh/k"


def test_directory_spellings_per_platform():
    assert portable.looks_like_directory("C:\\lab\\", platform=WIN)
    assert portable.looks_like_directory("C:", platform=WIN)
    assert not portable.looks_like_directory(r"C:\lab\.env", platform=WIN)
    assert portable.looks_like_directory("lab/", platform="linux")
    assert not portable.looks_like_directory("lab\\", platform="linux")  # a (strange) file name on POSIX


# --- the operator-side code on these helpers -------------------------------------------------------------


def test_config_accepts_windows_paths_and_refuses_a_windows_directory_on_windows(monkeypatch):
    from conftest import good_raw

    from components.config import ConfigError, parse_config

    win = {"envFilePath": r"C:\Users\ana\lab\.env", "sshPrivateKeyPath": r"C:\Users\ana\.ssh\id_ed25519"}
    cfg = parse_config(good_raw(**win), "dev")
    assert cfg.env_file_path == win["envFilePath"] and cfg.ssh_private_key_path == win["sshPrivateKeyPath"]
    monkeypatch.setattr(portable.sys, "platform", WIN)
    with pytest.raises(ConfigError, match=r"envFilePath.*'C:\\lab\\' must be a file path, not a directory"):
        parse_config(good_raw(envFilePath="C:\\lab\\"), "dev")


def test_envcheck_key_discovery_uses_userprofile_on_windows(tmp_path: Path, monkeypatch):
    from components import envcheck

    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ecdsa").write_text("k")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", r"C:\Users\ana")
    assert envcheck.resolve_key_paths("") == [str(tmp_path / ".ssh" / "id_ecdsa")]  # POSIX: $HOME
    # Windows: %USERPROFILE%; a Windows path cannot exist on this host, so is_file answers for that one file.
    monkeypatch.setattr(portable.sys, "platform", WIN)
    monkeypatch.setattr(portable.Path, "is_file", lambda p: str(p) == r"C:\Users\ana\.ssh\id_rsa")
    assert envcheck.resolve_key_paths("") == [r"C:\Users\ana\.ssh\id_rsa"]
    assert envcheck.resolve_key_paths(r"~\keys\lab") == [r"C:\Users\ana\keys\lab"]


def test_dotenv_keeps_windows_paths_with_backslashes(tmp_path: Path):
    from dotenv import dotenv_values

    from components import envcheck

    text = envcheck.render_dotenv({"DB_SSL_CA": r"C:\Users\ana\certs\ca.pem", "DB_HOST": "10.0.1.2"})
    out = envcheck.write_private_file(tmp_path / ".env", text)
    assert dotenv_values(out) == {"DB_SSL_CA": r"C:\Users\ana\certs\ca.pem", "DB_HOST": "10.0.1.2"}
