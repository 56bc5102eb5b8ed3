"""Workers of ``fsml serve --workers N`` end when their master ends, even by SIGKILL.

Uvicorn's workers are child processes that nothing ties to the master's life: a SIGKILL of the
master leaves them serving on the port with no supervisor. On Linux the kernel's
``PR_SET_PDEATHSIG`` (set through libc with ctypes: no library wraps it) sends the worker SIGTERM
when its parent dies, and uvicorn then shuts the worker down cleanly (the prediction log is
written). Elsewhere a thread checks ``os.getppid()`` every second.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)

MASTER_ENV = "FSML_SERVE_MASTER_PID"
PR_SET_PDEATHSIG = 1


def follow_master() -> None:
    """Called in each process that builds the app; does nothing outside a multi-worker serve."""
    master = os.environ.get(MASTER_ENV)
    if not master or int(master) == os.getpid():
        return
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d): watching the master instead", ctypes.get_errno())
            _watch(int(master))
    else:
        _watch(int(master))
    if os.getppid() != int(master):  # the master died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)


def _watch(master: int) -> None:
    def check() -> None:
        while os.getppid() == master:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=check, name="master-watch", daemon=True).start()
