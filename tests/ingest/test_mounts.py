from __future__ import annotations

import pytest

from bshmd.fs.mounts import (
    is_network_fs,
    mode_for,
    mount_for,
    parse_mountinfo,
    unescape,
    watch_mode_for,
)

SAMPLE = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 0:35 / /mnt/nas rw,relatime shared:20 - nfs4 nas:/export rw,vers=4.2
41 40 8:17 / /mnt/nas/local\\040disk rw,relatime - xfs /dev/sdb1 rw
42 22 0:36 / /srv/Photo\\040Drop rw,relatime shared:21 - cifs //fs/Photo\\040Drop rw,vers=3.1.1
43 22 0:37 / /srv/sshfs rw,nosuid - fuse.sshfs user@host:/x rw,user_id=0
44 22 0:38 / /srv/usb rw - fuseblk /dev/sdc1 rw
45 22 0:39 / /srv/tmp rw master:3 propagate_from:2 - tmpfs tmpfs rw
garbage line without separator
"""


def test_parse_mountinfo_reads_mount_points_and_types():
    mounts = parse_mountinfo(SAMPLE)
    assert [m.mount_point for m in mounts][:3] == ["/", "/proc", "/mnt/nas"]
    assert mounts[2].fs_type == "nfs4" and mounts[2].source == "nas:/export"
    assert mounts[4].mount_point == "/srv/Photo Drop" and mounts[4].source == "//fs/Photo Drop"
    assert mounts[7].fs_type == "tmpfs"  # optional fields before the separator are skipped
    assert len(mounts) == 8


def test_unescape_handles_octal_escapes():
    assert unescape("a\\040b\\011c\\012d\\134e") == "a b\tc\nd\\e"


@pytest.mark.parametrize(("path", "fs_type"), [
    ("/home/user/in", "ext4"),
    ("/mnt/nas", "nfs4"),
    ("/mnt/nas/in/deeper", "nfs4"),
    ("/mnt/nas/local disk/in", "xfs"),  # longest prefix wins
    ("/mnt/nasty", "ext4"),  # a prefix of the name is not a parent folder
    ("/srv/Photo Drop/in", "cifs"),
    ("/srv/sshfs/in", "fuse.sshfs"),
])
def test_mount_for_uses_the_longest_mount_point_prefix(path, fs_type):
    assert mount_for(path, parse_mountinfo(SAMPLE)).fs_type == fs_type


@pytest.mark.parametrize(("fs_type", "network"), [
    ("nfs", True), ("nfs4", True), ("cifs", True), ("smb3", True), ("9p", True), ("ceph", True),
    ("glusterfs", True), ("fuse.sshfs", True), ("fuse.rclone", True), ("afs", True),
    ("ext4", False), ("xfs", False), ("btrfs", False), ("tmpfs", False), ("overlay", False), ("fuseblk", False),
])
def test_network_filesystems_are_recognised(fs_type, network):
    assert is_network_fs(fs_type) is network


def test_watch_mode_follows_the_filesystem_unless_forced():
    mounts = parse_mountinfo(SAMPLE)
    assert mode_for("/srv/Photo Drop/in", "auto", mounts) == "poll"
    assert mode_for("/home/x", "auto", mounts) == "events"
    assert mode_for("/home/x", "poll", mounts) == "poll"
    assert mode_for("/srv/Photo Drop/in", "events", mounts) == "events"
    assert mode_for("/x", "auto", []) == "poll"


def test_watch_mode_reads_this_machines_mountinfo(tmp_path):
    # This test machine's temp folder is local (the suite does not run from a NAS).
    assert watch_mode_for(tmp_path / "not-yet-created", "auto") == "events"
    assert watch_mode_for(tmp_path, "poll") == "poll"
