"""What every replay of recorded time shares (a recording's file, a relay's history): pause, resume,
speed, seek and stop, and pacing each row by its recorded time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tickerterm.core.errors import ConfigError


class Playback:
    """The controls of one replay and its clock. A replay asks ``pace(t)`` before handing on a row
    recorded at ``t``, and between rows looks at ``stopped`` and ``take_seek()``."""

    def __init__(self, speed: float, clock: Callable[[], float]) -> None:
        self.speed = speed
        """Recorded seconds per second of replay; 0 = as fast as it goes."""
        self.clock = clock
        self.running = asyncio.Event()
        self.running.set()
        self.stopped = False
        self._seek: float | None = None
        self._restart_clock = False
        self._wall0: float | None = None
        self._rec0 = 0.0

    def begin(self) -> None:
        """A play begins (the first, or after a seek): the clock starts at its first row that is paced."""
        self._wall0 = None

    async def pace(self, at: float) -> None:
        """Wait until the row recorded at ``at`` is due: paused, at speed, or at once at speed 0."""
        if self.speed <= 0:
            await self.running.wait()
            return
        if self._wall0 is None or self._restart_clock:
            self._restart_clock = False
            self._wall0, self._rec0 = self.clock(), at
        await self.running.wait()
        delay = (at - self._rec0) / self.speed - (self.clock() - self._wall0)
        if delay > 0:
            await asyncio.sleep(delay)
        if not self.running.is_set():  # paused while waiting: the clock starts again after
            await self.running.wait()
            self._wall0, self._rec0 = self.clock(), at

    def seek(self, at: float, first: float, last: float) -> None:
        self._seek = min(max(at, first), last)
        self.running.set()

    def take_seek(self) -> float | None:
        """Where a seek asked to go (once), or None."""
        seek, self._seek = self._seek, None
        return seek

    def stop(self) -> None:
        self.stopped = True
        self.running.set()

    def control(self, action: str, args: dict[str, Any], first: float, last: float) -> str | None:
        """``pause``, ``resume``, ``speed`` (``speed=``), ``seek`` (``timestamp=``), ``stop``: the state to
        say afterwards (``paused``/``resumed``) or None; ConfigError for anything else."""
        if action == "pause":
            self.running.clear()
            return "paused"
        if action == "resume":
            self.running.set()
            return "resumed"
        if action == "speed":
            self.speed = max(0.0, float(args["speed"]))
            self._restart_clock = True
            return "resumed" if self.running.is_set() else "paused"
        if action == "seek":
            self.seek(float(args["timestamp"]), first, last)
            return None
        if action == "stop":
            self.stop()
            return None
        raise ConfigError(f"unknown replay control {action!r}")
