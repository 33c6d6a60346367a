"""`refinery-supervise -- COMMAND...`: run COMMAND and start it again when it exits with the code that asks
for it (70: the worker's watchdog found a Kafka call wedged past its timeout, `refinery.worker.watchdog`),
at most `--max-restarts` times in `--window-s` seconds. What compose's `restart: unless-stopped` and a
systemd unit do for a deployment, for the local stack (`refinery-stack`), which starts its services in
the background and would otherwise leave a wedged worker dead.

Any other exit code ends the supervisor with that code (128 + N for a command killed by signal N); so
does a spent restart budget (the last code).
SIGTERM / SIGINT are passed on to the command, which is then not started again.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import FrameType

RESTART_CODE = 70  # refinery.worker.watchdog's exit code for "wedged: start me again"
MAX_RESTARTS = 5  # restarts allowed within WINDOW_S
WINDOW_S = 300.0


class Supervisor:
    def __init__(
        self,
        argv: Sequence[str],
        *,
        restart_code: int = RESTART_CODE,
        max_restarts: int = MAX_RESTARTS,
        window_s: float = WINDOW_S,
        delay_s: float = 1.0,
        say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    ) -> None:
        self.argv = list(argv)
        self.restart_code = restart_code
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.delay_s = delay_s
        self.say = say
        self.restarts: deque[float] = deque()  # when each restart happened, within the window
        self.stopping = False
        self._child: subprocess.Popen[bytes] | None = None

    def stop(self, signum: int, _frame: FrameType | None = None) -> None:
        self.stopping = True
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    def run(self) -> int:
        while True:
            self._child = subprocess.Popen(self.argv)
            code = self._child.wait()
            if self.stopping or code != self.restart_code:
                return code
            now = time.monotonic()
            while self.restarts and now - self.restarts[0] > self.window_s:
                self.restarts.popleft()
            if len(self.restarts) >= self.max_restarts:
                self.say(f"supervise: {self.argv[0]} exited with code {code} again; "
                         f"{self.max_restarts} restarts in {self.window_s:g} s spent, giving up")  # fmt: skip
                return code
            self.restarts.append(now)
            self.say(f"supervise: {self.argv[0]} exited with code {code}; starting it again (restart "
                     f"{len(self.restarts)} of {self.max_restarts} in {self.window_s:g} s)")  # fmt: skip
            time.sleep(self.delay_s)
            if self.stopping:
                return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="refinery-supervise", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--restart-on", type=int, default=RESTART_CODE, help=f"exit code that restarts ({RESTART_CODE})"
    )
    parser.add_argument(
        "--max-restarts", type=int, default=MAX_RESTARTS, help=f"restarts allowed per window ({MAX_RESTARTS})"
    )
    parser.add_argument(
        "--window-s", type=float, default=WINDOW_S, help=f"the window, in seconds ({WINDOW_S:g})"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --, e.g. refinery-supervise -- refinery worker")
    supervisor = Supervisor(
        command, restart_code=args.restart_on, max_restarts=args.max_restarts, window_s=args.window_s
    )
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    code = supervisor.run()
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it


if __name__ == "__main__":
    sys.exit(main())
