"""The hub's idle culler: jupyterhub_idle_culler, which ends when the hub that started it is gone.

JupyterHub stops its managed services when it stops; a hub that is killed (out of memory, SIGKILL)
cannot, and the culler would run on, orphaned, with a token of a hub that no longer exists. Run as
``python -m aml_jupyterhub.idle_culler <jupyterhub_idle_culler's options>``.
"""

from __future__ import annotations

import os
import sys
import threading
import time

HUB_PID_VARIABLE = "IDLE_CULLER_HUB_PID"  # set by the hub (hubconfig), as its parent may die before we look
HUB_GONE_CHECK_SECONDS = 2


def end_when_the_hub_is_gone(started_by: int, check_every: float = HUB_GONE_CHECK_SECONDS) -> None:
    while os.getppid() == started_by:
        time.sleep(check_every)
    print(f"idle-culler: the hub (pid {started_by}) is gone; the idle culler stops", file=sys.stderr, flush=True)
    os._exit(0)  # the culler's loop holds the main thread; nothing of it needs an orderly end


def main() -> None:
    started_by = int(os.environ.get(HUB_PID_VARIABLE) or os.getppid())
    threading.Thread(target=end_when_the_hub_is_gone, args=(started_by,), name="hub-watch", daemon=True).start()
    try:
        from jupyterhub_idle_culler import main as run_culler

        run_culler()
    except KeyboardInterrupt:  # the hub's stop, which may come while the culler still starts
        pass


if __name__ == "__main__":
    main()
