"""The SQLite ledger is refused on a network or FUSE mount: a real bindfs (FUSE) mount."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from bshmd.errors import ConfigError
from bshmd.service.daemon import check_state_dir
from tests.support.config import make_config


def test_a_state_dir_on_a_fuse_mount_is_refused_naming_the_key(hot, tmp_path):
    if shutil.which("bindfs") is None:
        pytest.skip("bindfs is not installed")
    backing, mounted = tmp_path / "backing", tmp_path / "mounted"
    backing.mkdir()
    mounted.mkdir()
    try:
        subprocess.run(["bindfs", str(backing), str(mounted)], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount with bindfs here: {exc}")
    try:
        check_state_dir(make_config(hot, state_dir=str(tmp_path / "local")))  # a local disk: fine
        with pytest.raises(ConfigError, match=r"state_dir = .*fuse.*ledger\.url"):
            check_state_dir(make_config(hot, state_dir=str(mounted / "state")))
        # With a PostgreSQL ledger the state folder holds no database: nothing to refuse.
        check_state_dir(make_config(hot, state_dir=str(mounted / "state"), ledger={"url": "postgresql://db/bshmd"}))
    finally:
        subprocess.run(["fusermount", "-u", str(mounted)], check=False, capture_output=True, timeout=30)
