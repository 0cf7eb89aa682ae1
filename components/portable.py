"""Operator-side file, lock, signal and path helpers that behave the same on Linux, macOS and Windows.

Everything that runs on a student's own machine (the EnvFile provider writing ``.env``, the SSH check finding a
key, ``labctl`` writing state and reports) goes through here, so the platform differences live in one place and
are tested in one place. Each platform branch takes an injectable ``platform`` (a ``sys.platform`` value such as
``"linux"``, ``"darwin"``, ``"win32"``) so the Windows branches are exercised on Linux by the tests, not skipped.

Decisions
---------
* **Private files** (``write_private_file``): written to a temp file in the same directory, fsynced, then
  ``os.replace``d over the target, so a reader sees the old content or the new one, never half. On POSIX the temp
  file is created 0600 (``mkstemp``) and chmodded 0600 before any byte is written. On Windows the mode bits mean
  nothing, so the temp file's DACL is cut down to the current user with ``icacls <file> /inheritance:r /grant:r
  <user>:F`` *before* the secret is written (syntax: Microsoft, "icacls", learn.microsoft.com/windows-server/
  administration/windows-commands/icacls); a rename keeps that DACL. When ``icacls`` is missing or fails, the file
  is still written and a ``PrivateFileWarning`` says so, naming the file and what to do.
* **Links are refused, never followed**: a symlink (or, on Windows, any reparse point such as a junction) or a
  directory at the target path is refused with ``UnsafePathError``. ``os.replace`` itself replaces a link rather
  than following it, and reads use ``O_NOFOLLOW`` where the OS has it (``lstat`` checks elsewhere), so even a link
  that appears after the check is never written through.
* **Removal** (``remove_file_no_follow``): removes a regular file only. A symlink or directory at the path is *left
  alone* (we never write one there, so it is not ours), reported with a ``PrivateFileWarning`` and ``False``; the
  target of a link is never touched. A removal must never block a ``pulumi destroy``, so this does not raise for
  those cases.
* **Locks** (``exclusive_lock``): ``filelock`` (flock on POSIX, LockFileEx on Windows). Windows locks byte 0 of the
  lock file, which other processes then cannot read, so the holder's PID goes to a sidecar ``<lock>.pid`` file written
  after the lock is taken and removed before it is released. A second run fails at once with ``LockHeld``: "<what> is
  in use by PID n (lock file …)".
* **Interrupts**: only SIGINT, SIGTERM and (where it exists, i.e. Windows) SIGBREAK; no SIGHUP/SIGQUIT/SIGUSR.
  Python installs signal handlers from the main thread only, so ``Interrupts`` refuses other threads explicitly.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from types import FrameType, TracebackType

import filelock

SSH_KEY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")
FILE_ATTRIBUTE_REPARSE_POINT = 0x400  # winnt.h; set on symlinks and junctions (os.stat_result.st_file_attributes)


class UnsafePathError(OSError):
    """A path we were asked to write or read is a link or a directory; the message names it and the fix."""


class PrivateFileWarning(UserWarning):
    """A private file could not be restricted to the current user, or a path was left alone on purpose."""


def is_windows(platform: str | None = None) -> bool:
    return (platform or sys.platform).startswith(("win32", "cygwin", "msys"))


def pure_path_class(platform: str | None = None) -> type[PurePath]:
    """How paths are spelled on ``platform``: ``PureWindowsPath`` (drive letters, ``\\``) or ``PurePosixPath``."""
    return PureWindowsPath if is_windows(platform) else PurePosixPath


# --- paths from config -----------------------------------------------------------------------------------------


def home_dir(*, platform: str | None = None, environ: dict[str, str] | None = None) -> PurePath:
    """The user's home as the platform defines it: ``%USERPROFILE%`` on Windows, ``$HOME`` elsewhere."""
    env = os.environ if environ is None else environ
    cls = pure_path_class(platform)
    if is_windows(platform):
        if env.get("USERPROFILE"):
            return cls(env["USERPROFILE"])
        if env.get("HOMEDRIVE") and env.get("HOMEPATH"):
            return cls(env["HOMEDRIVE"] + env["HOMEPATH"])
    elif env.get("HOME"):
        return cls(env["HOME"])
    return cls(str(Path.home()))


def config_path(
    text: str,
    *,
    platform: str | None = None,
    home: PurePath | str | None = None,
    base: PurePath | str | None = None,
) -> PurePath:
    """A path typed into config (``envFilePath``, ``sshPrivateKeyPath``), read the way ``platform`` reads it.

    ``~`` and ``~/`` (and ``~\\`` on Windows) mean the home directory; ``C:\\Users\\ana\\lab\\.env``, ``C:/x``,
    ``\\\\server\\share\\x`` and ``lab\\.env`` are Windows paths on Windows; a relative path is taken relative to
    ``base`` when given (the program directory: Pulumi runs the program there). No shell is involved.
    """
    cls = pure_path_class(platform)
    value = text.strip()
    home_path = cls(home) if home is not None else home_dir(platform=platform)
    seps = ("~/", "~\\") if is_windows(platform) else ("~/",)
    if value == "~":
        return home_path
    if value.startswith(seps):
        return home_path / value[2:]
    path = cls(value)
    if base is not None and not path.is_absolute() and not (is_windows(platform) and path.drive):
        path = cls(base) / path
    return path


def looks_like_directory(text: str, *, platform: str | None = None) -> bool:
    """True for a path that names a directory by its spelling: it ends in ``/`` (or ``\\`` on Windows), or is
    ``.``/``..``/``~`` or a bare drive (``C:``)."""
    value = text.strip()
    if not value:
        return True
    ends = ("/", "\\") if is_windows(platform) else ("/",)
    if value.endswith(ends) or value in (".", "..", "~"):
        return True
    p = pure_path_class(platform)(value)
    return is_windows(platform) and bool(p.drive) and p.name == ""


def to_local(path: PurePath) -> Path:
    """A pure path of this machine's flavour as a concrete ``Path``."""
    return Path(str(path))


def default_ssh_key_paths(*, home: Path | None = None, platform: str | None = None) -> list[Path]:
    """Where OpenSSH looks for a private key, in its order: ``~/.ssh/id_ed25519``, ``id_ecdsa``, ``id_rsa``.

    On Windows, OpenSSH for Windows uses ``%USERPROFILE%\\.ssh\\`` (the same three names). Existence is not checked.
    """
    cls = pure_path_class(platform)
    base = cls(str(home)) if home is not None else home_dir(platform=platform)
    return [Path(str(base / ".ssh" / name)) for name in SSH_KEY_NAMES]


def existing_ssh_keys(*, home: Path | None = None, platform: str | None = None) -> list[Path]:
    """The default key paths that exist as regular files (a link to a key is fine: ssh follows it too)."""
    return [p for p in default_ssh_key_paths(home=home, platform=platform) if p.is_file()]


# --- refusing links ----------------------------------------------------------------------------------------


def _is_link(st: os.stat_result, platform: str | None) -> bool:
    if stat.S_ISLNK(st.st_mode):
        return True
    # A junction is no symlink to S_ISLNK but is a reparse point; on Windows refuse every reparse point.
    return is_windows(platform) and bool(getattr(st, "st_file_attributes", 0) & FILE_ATTRIBUTE_REPARSE_POINT)


def refuse_link_or_dir(path: Path, *, platform: str | None = None, what: str = "file") -> bool:
    """Raise ``UnsafePathError`` if ``path`` is a link/reparse point or a directory; True when a file exists."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if _is_link(st, platform):
        raise UnsafePathError(
            errno.ELOOP,
            f"{path} is a symbolic link (or junction); refusing to write the {what} through it. "
            f"Remove the link, or point the setting at a plain file path such as {path.parent / path.name}",
        )
    if stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(
            errno.EISDIR,
            f"{path} is a directory; the {what} must be a file path, e.g. {path / '.env'}",
        )
    return True


def read_text_no_follow(path: Path, *, platform: str | None = None) -> str:
    """Read a text file without following a symlink at ``path`` (``O_NOFOLLOW`` where the OS has it)."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    if not nofollow or is_windows(platform):
        refuse_link_or_dir(path, platform=platform)
    flags = os.O_RDONLY | nofollow | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(errno.ELOOP, f"{path} is a symbolic link; refusing to read through it") from None
        raise
    with os.fdopen(fd, "rb") as f:
        return f.read().decode("utf-8")


# --- atomic writes -----------------------------------------------------------------------------------------


def _fsync_dir(directory: Path, platform: str | None) -> None:
    if is_windows(platform) or not hasattr(os, "O_DIRECTORY"):
        return  # Windows cannot open a directory as a file; NTFS journals the rename itself
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(
    path: Path,
    data: bytes,
    *,
    mode: int,
    platform: str | None,
    what: str,
    before_write: Callable[[Path], None] | None = None,
) -> Path:
    path = Path(path).expanduser()
    if not path.name:
        raise UnsafePathError(errno.EISDIR, f"{path} names a directory; the {what} must be a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_link_or_dir(path, platform=platform, what=what)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # O_EXCL, 0600
    tmp = Path(tmp_name)
    try:
        if not is_windows(platform):
            os.chmod(tmp, mode)
        if before_write is not None:
            before_write(tmp)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # replaces a link that raced in, never follows it
    except BaseException:
        if fd != -1:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent, platform)
    return path.resolve()


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644, platform: str | None = None) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically: temp file in the same directory, fsync, ``os.replace``.

    ``mode`` applies on POSIX; a link or directory at ``path`` is refused. Returns the resolved path.
    """
    return _atomic_write(path, text.encode("utf-8"), mode=mode, platform=platform, what="file")


def current_windows_account(environ: dict[str, str] | None = None) -> str:
    """``DOMAIN\\user`` of the current Windows user (``USERDOMAIN``/``USERNAME``), or the bare user name."""
    env = os.environ if environ is None else environ
    user = env.get("USERNAME") or getpass.getuser()
    domain = env.get("USERDOMAIN")
    return f"{domain}\\{user}" if domain else user


def icacls_private_args(path: Path, account: str) -> list[str]:
    """icacls arguments that leave exactly one ACE on ``path``: full control for ``account``.

    ``/inheritance:r`` drops every inherited ACE (Users, Authenticated Users, …), ``/grant:r`` replaces any explicit
    grant for the account. See the module docstring for the source.
    """
    return [str(path), "/inheritance:r", "/grant:r", f"{account}:F", "/q"]


def restrict_to_current_user(path: Path, *, platform: str | None = None) -> bool:
    """Limit ``path`` to the current user: chmod 0600 on POSIX; on Windows an icacls DACL with one ACE.

    Returns True on success. On Windows, when ``icacls`` is missing or fails, warns (``PrivateFileWarning``) with the
    file name and the manual fix, and returns False; the caller decides whether to go on (a lab ``.env`` does).
    """
    if not is_windows(platform):
        os.chmod(path, 0o600)
        return True
    account = current_windows_account()
    exe = shutil.which("icacls")
    problem = ""
    if exe is None:
        problem = "icacls was not found on PATH"
    else:
        try:
            proc = subprocess.run(
                [exe, *icacls_private_args(path, account)], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError) as exc:
            problem = f"icacls could not run ({type(exc).__name__})"
        else:
            if proc.returncode == 0:
                return True
            detail = (proc.stderr or proc.stdout or "").strip().splitlines()
            problem = f"icacls exited {proc.returncode}" + (f": {detail[0][:200]}" if detail else "")
    warnings.warn(
        f"could not limit {path} to {account} ({problem}); the file keeps the folder's permissions. "
        f'Restrict it yourself: icacls "{path}" /inheritance:r /grant:r "{account}:F"',
        PrivateFileWarning,
        stacklevel=3,
    )
    return False


def write_private_file(path: Path, content: str, *, platform: str | None = None) -> Path:
    """Atomically replace ``path`` with ``content``, readable by the current user only from the first byte.

    POSIX: mode 0600. Windows: a DACL for the current user only (or a ``PrivateFileWarning`` when it cannot be set).
    Refuses a link or a directory at ``path``. Returns the resolved path.
    """

    def restrict(tmp: Path) -> None:
        if is_windows(platform):
            restrict_to_current_user(tmp, platform=platform)

    return _atomic_write(
        path, content.encode("utf-8"), mode=0o600, platform=platform, what="private file", before_write=restrict
    )


def remove_file_no_follow(path: Path, *, platform: str | None = None) -> bool:
    """Remove the regular file at ``path``; True when something was removed.

    Never follows a link: a symlink/junction or a directory at ``path`` is left alone (warned about, False), since
    nothing here ever writes one. A missing file is False. Other errors (permissions) propagate.
    """
    path = Path(path).expanduser()
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if _is_link(st, platform) or stat.S_ISDIR(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a symbolic link"
        warnings.warn(
            f"left {path} alone: it is {kind}, not a file this project wrote", PrivateFileWarning, stacklevel=2
        )
        return False
    try:
        os.unlink(path)  # unlink never follows a link
    except FileNotFoundError:
        return False
    return True


def ensure_private_dir(path: Path, *, platform: str | None = None) -> Path:
    """Create ``path`` (and parents) if needed; 0700 on POSIX, user-only DACL on Windows. Refuses a link."""
    path = Path(path).expanduser()
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        path.mkdir(parents=True, mode=0o700)
        st = os.lstat(path)
    if _is_link(st, platform):
        raise UnsafePathError(errno.ELOOP, f"{path} is a symbolic link; give a real directory path")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(errno.ENOTDIR, f"{path} exists and is not a directory")
    if is_windows(platform):
        restrict_to_current_user(path, platform=platform)
    else:
        os.chmod(path, 0o700)
    return path.resolve()


# --- locks -----------------------------------------------------------------------------------------------------


class LockHeld(Exception):
    """Another process holds the lock; ``str()`` names what is locked, the holder's PID and the lock file."""

    def __init__(self, what: str, lock_file: Path, pid: int | None) -> None:
        self.what = what
        self.lock_file = lock_file
        self.pid = pid
        holder = f"PID {pid}" if pid is not None else "another process (its PID was not recorded yet)"
        super().__init__(
            f"{what} is in use by {holder} (lock file {lock_file}); wait for it to finish, or stop it first. "
            "A lock left by a crashed run is released by the OS, so no file needs deleting"
        )


def holder_file(lock_file: Path) -> Path:
    """Where the lock holder's PID is recorded (a sidecar: Windows keeps the locked file unreadable to others)."""
    return lock_file.with_name(lock_file.name + ".pid")


def read_holder_pid(lock_file: Path) -> int | None:
    try:
        text = read_text_no_follow(holder_file(lock_file)).strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def exclusive_lock(path: Path, *, what: str, timeout: float = 0.0) -> Iterator[None]:
    """Hold an OS file lock on ``path`` for the ``with`` block; raise ``LockHeld`` if another holder has it.

    ``timeout`` 0 (default) fails at once. The lock is released by the OS if the process dies, so a crash never
    leaves a stale lock behind (the ``.pid`` sidecar may stay; it is only read while the lock is held elsewhere).
    """
    lock_file = Path(path).expanduser()
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    refuse_link_or_dir(lock_file, what="lock file")
    lock = filelock.FileLock(str(lock_file), timeout=timeout, thread_local=False)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LockHeld(what, lock_file, read_holder_pid(lock_file)) from None
    try:
        atomic_write_text(holder_file(lock_file), f"{os.getpid()}\n")
        yield
    finally:
        with contextlib.suppress(OSError):
            remove_file_no_follow(holder_file(lock_file))
        lock.release()


# --- Ctrl-C and termination ---------------------------------------------------------------------------------


def interrupt_signal_names(platform: str | None = None) -> tuple[str, ...]:
    """The termination signals handled on ``platform``: SIGINT and SIGTERM everywhere; SIGBREAK (Ctrl-Break, and
    what a console close sends) on Windows. No POSIX-only signal is assumed."""
    names = ("SIGINT", "SIGTERM")
    return (*names, "SIGBREAK") if is_windows(platform) else names


class Interrupts:
    """Turn the first Ctrl-C / termination into a request to stop cleanly, the second into an abort.

    ``with Interrupts(on_first=...) as irq:`` — the first signal sets ``irq.requested`` (and ``irq.signal_name``)
    and calls ``on_first(name)``; work should then finish or skip what is in flight and leave state consistent. A
    second signal calls ``on_second(name)``, by default raising ``KeyboardInterrupt``. Previous handlers are put
    back on exit. Only the main thread may install signal handlers (a Python rule), so entering from another
    thread raises ``RuntimeError``; signals the platform lacks are skipped.
    """

    def __init__(
        self,
        on_first: Callable[[str], None] | None = None,
        on_second: Callable[[str], None] | None = None,
        *,
        platform: str | None = None,
    ) -> None:
        self.on_first = on_first
        self.on_second = on_second
        self.platform = platform
        self.requested = False
        self.signal_name: str | None = None
        self.count = 0
        self._previous: dict[int, object] = {}

    def signals(self) -> list[tuple[str, int]]:
        return [
            (name, int(getattr(signal, name)))
            for name in interrupt_signal_names(self.platform)
            if hasattr(signal, name)
        ]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.count += 1
        if self.count == 1:
            self.requested = True
            self.signal_name = name
            if self.on_first is not None:
                self.on_first(name)
            return
        if self.on_second is not None:
            self.on_second(name)
            return
        raise KeyboardInterrupt(f"{name} received twice")

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                "Interrupts must be entered from the main thread (Python installs signal handlers there)"
            )
        for _name, num in self.signals():
            self._previous[num] = signal.signal(num, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for num, handler in self._previous.items():
            signal.signal(num, handler)  # type: ignore[arg-type]
        self._previous.clear()
