"""Running a command as an unprivileged account from a test that runs as root, with this
interpreter.

The account has to reach the interpreter (this virtual environment and the Python it was made
from) and the folders the command uses. On a developer's machine these often sit under a 0700
home (a pyenv Python in /root/.pyenv, a checkout in ~/src, pytest's /tmp/pytest-of-root): the
account cannot pass through it, and opening the home up (chmod o+x) is not a test's to do. So
the command runs in a mount namespace of its own, where each such closed folder is covered by an
empty tmpfs (mode 0755) into which only the needed folders are bound back at their own paths.
The interpreter's absolute paths (libpython's RUNPATH, pyvenv.cfg's home) hold unchanged, the
rest of the home stays hidden, and nothing changes on disk or for any other process. The
interpreter's folders are bound back read-only: the command cannot write there even by mistake.
Where nothing is closed, the command only drops its privileges (setpriv, util-linux).
"""

from __future__ import annotations

import os
import pwd
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

UNPRIVILEGED = "nobody"


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int

    @classmethod
    def named(cls, name: str = UNPRIVILEGED) -> Account:
        entry = pwd.getpwnam(name)
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    @classmethod
    def current(cls) -> Account:
        entry = pwd.getpwuid(os.geteuid())
        return cls(entry.pw_name, entry.pw_uid, os.getegid())


def interpreter_folders() -> list[Path]:
    """What the interpreter reads: the virtual environment and the Python it was made from."""
    return [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent]


def may_enter(folder: Path, account: Account) -> bool:
    """Whether ``account`` (its own group only: setpriv clears the others) may pass through ``folder``."""
    st = folder.stat()
    if account.uid == 0:
        return True
    bit = stat.S_IXUSR if st.st_uid == account.uid else stat.S_IXGRP if st.st_gid == account.gid else stat.S_IXOTH
    return bool(st.st_mode & bit)


def closed_at(path: Path, account: Account) -> Path | None:
    """The outermost folder on the way to ``path`` that ``account`` cannot pass through, or None."""
    for folder in [*reversed(path.parents), path]:
        if not may_enter(folder, account):
            return folder
    return None


def as_account(argv: list[str], account: Account, *, cwd: Path, env: dict[str, str],
               reach: list[Path], stage: Path) -> list[str]:
    """``argv`` wrapped to run as ``account`` in ``cwd`` with exactly the environment ``env``.

    ``reach``: folders the command needs besides the interpreter's (the account must own or be
    able to read them; only the way to them is opened). ``stage``: a folder of root's outside
    every closed one (a ``tempfile.mkdtemp()``), for the namespace's handles on the folders it
    binds back; empty once the command ends, left to the caller to remove."""
    command = ["env", "-i", *(f"{key}={value}" for key, value in env.items()), *argv]
    if os.geteuid() != 0:
        if account.uid != os.geteuid():
            raise AssertionError(f"running as {account.name} needs root; this test runs as uid {os.geteuid()}")
        return ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(cwd), *command]

    needed = _outermost([*interpreter_folders(), *(p.resolve() for p in reach), cwd.resolve()])
    by_closure: dict[Path, list[Path]] = {}
    for path in needed:
        closure = closed_at(path, account)
        if closure == path or not may_enter(path, account):  # binding keeps a folder's own mode
            raise AssertionError(f"{path} itself is closed to {account.name} (mode "
                                 f"{stat.S_IMODE(path.stat().st_mode):04o}); the command cannot read it")
        if closure is not None:
            by_closure.setdefault(closure, []).append(path)

    hidden = [closure for closure in by_closure if closure == stage.resolve() or closure in stage.resolve().parents]
    if hidden:
        raise AssertionError(f"the stage {stage} lies in {hidden[0]}, which the namespace covers; take one in /tmp")
    lines = ["set -e", "umask 022"]
    count = 0
    for closure, paths in by_closure.items():
        staged = []
        for path in paths:  # keep a handle on each folder before the tmpfs hides it
            count += 1
            handle = stage / str(count)
            lines += [f"mkdir -p {_q(handle)}", f"mount --bind {_q(path)} {_q(handle)}"]
            staged.append((handle, path))
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m bshmd-test-reach {_q(closure)}")
        for handle, path in staged:
            lines += [f"mkdir -p {_q(path)}", f"mount --bind {_q(handle)} {_q(path)}"]
            if path in interpreter_folders():
                lines.append(f"mount -o remount,bind,ro {_q(path)}")
    lines.append(f"cd {_q(cwd)}")
    lines.append(f"exec setpriv --reuid={account.uid} --regid={account.gid} --clear-groups -- \"$@\"")
    shell = ["sh", "-c", "\n".join(lines), "sh", *command]
    if not by_closure:
        return shell
    return ["unshare", "--mount", "--propagation", "private", *shell]


def _outermost(paths: list[Path]) -> list[Path]:
    """The paths, less those inside another of them (binding the outer one brings them along)."""
    unique = sorted(set(paths), key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in unique:
        if not any(path == outer or outer in path.parents for outer in kept):
            kept.append(path)
    return kept


def _q(path: Path) -> str:
    return shlex.quote(str(path))
