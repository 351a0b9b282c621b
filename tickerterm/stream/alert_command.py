"""``--alert-exec CMD``: a command run for each alert, with the alert as one JSON line on its stdin.

Bounded so it can never hold the feed up: at most ``max_running`` commands at once (an alert beyond
that is skipped and counted), each killed after ``timeout`` seconds. A command that fails, times out or
is skipped is said as an ``Alert`` of the rule ``alert command`` (NDJSON, the toast, the health panel)
with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable

from tickerterm.core.events import Alert, Event
from tickerterm.core.ndjson import record
from tickerterm.core.safe import inert

log = logging.getLogger(__name__)

RULE = "alert command"


class AlertCommand:
    def __init__(
        self,
        command: str,
        report: Callable[[list[Event]], Awaitable[None]],
        clock: Callable[[], float],
        *,
        timeout: float = 10.0,
        max_running: int = 4,
    ) -> None:
        self.command = command
        self.timeout = timeout
        self.max_running = max_running
        self._report = report
        self._clock = clock
        self._running: set[asyncio.Task[None]] = set()
        self._reports: set[asyncio.Future[None]] = set()
        self.ran = 0
        self.failed = 0
        self.skipped = 0

    def submit(self, alerts: list[Alert]) -> None:
        """Run the command for each alert (never waits)."""
        for alert in alerts:
            if alert.rule == RULE:
                continue  # a failure of the command is not run through the command again
            if len(self._running) >= self.max_running:
                self.skipped += 1
                self._say(alert, f"skipped: {self.max_running} commands still running")
                continue
            task = asyncio.create_task(self._run(alert), name="alert-exec")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, alert: Alert) -> None:
        data = (json.dumps(record(alert), separators=(",", ":")) + "\n").encode()
        self.ran += 1
        try:
            proc = await asyncio.create_subprocess_shell(
                self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: a timeout kills what it started too
            )
        except OSError as exc:
            self.failed += 1
            self._say(alert, f"cannot start: {exc.strerror or exc}")
            return
        try:
            _, err = await asyncio.wait_for(proc.communicate(data), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the shell and its children (their pipes close)
            with contextlib.suppress(Exception):
                await proc.wait()
            self.failed += 1
            self._say(alert, f"killed after {self.timeout:g}s")
            return
        if proc.returncode:
            self.failed += 1
            said = inert(
                err.decode("utf-8", "replace").strip().splitlines()[-1] if err.strip() else "", one_line=True
            )
            self._say(alert, f"exit {proc.returncode}" + (f": {said[:200]}" if said else ""))

    def _say(self, alert: Alert, reason: str) -> None:
        log.warning("--alert-exec for %r: %s", alert.rule, reason)
        failure = Alert(alert.venue, self._clock(), alert.product, RULE, f"{reason} (for {alert.rule})")
        events: list[Event] = [failure]
        task = asyncio.ensure_future(self._report(events))
        self._reports.add(task)  # kept alive until it is done
        task.add_done_callback(self._reports.discard)

    async def aclose(self) -> None:
        """Wait for the commands still running (each is bounded by its timeout)."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=self.timeout + 1)
        if self._reports:
            await asyncio.wait(list(self._reports), timeout=1.0)
