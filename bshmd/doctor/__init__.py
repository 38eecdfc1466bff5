"""``bshmd doctor``: what is wrong with this set-up, checked before anyone reads a log.

Each check returns ``Check`` records (OK, WARN or FAIL, what was found, how to fix it). The
checks only look: they open nothing for writing, create nothing and bind a port only for the
instant it takes to see whether it is free. Where the daemon has a rule (how a folder is
watched, when a disk is full, where the SQLite ledger may live) the check asks the daemon's
own function, so the doctor and the daemon never disagree.

- check.py: ``Check`` and ``Host`` (what is read from the machine; tests point it elsewhere);
- model.py: the graph and TensorFlow; folders.py: the folders, their mounts and disks;
- host.py: inotify, systemd, the HTTP port, the clock; report.py: running and printing them.
"""

from bshmd.doctor.check import Check, Host, Status
from bshmd.doctor.folders import ServiceUser
from bshmd.doctor.host import clock_check, http_check
from bshmd.doctor.report import exit_status, render, run_checks

__all__ = ["Check", "Host", "ServiceUser", "Status", "clock_check", "exit_status", "http_check", "render",
           "run_checks"]
