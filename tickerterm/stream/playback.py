"""What every replay of recorded time shares (a recording's file, a relay's history): pause, resume,
speed, seek and stop, and pacing each row by its recorded time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tickerterm.core.errors import ConfigError
from tickerterm.core.events import Event, ReplayState
from tickerterm.core.store import Store
from tickerterm.stream.feed import next_event

Sink = Callable[[list[Event]], Awaitable[None] | None]


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


class Replaying:
    """A replay as a feed (``async with``, ``async for``, ``.store``, ``control``): what a recording's
    replay and a relay's history replay share. A subclass sets ``venue``, ``products``, ``first``,
    ``last``, ``start``, ``end`` and writes ``_play(at)`` (play from the beginning, silently before
    ``at``; return where a seek asks to go, or None at the end) and ``_last_trouble()``."""

    venue: str
    products: list[str]
    first: float
    last: float
    start: float
    end: float

    def _replaying(
        self,
        store: Store | None,
        sink: Sink | None,
        collect: bool,
        speed: float,
        clock: Callable[[], float],
    ) -> None:
        self.store = store or Store()
        self.sink = sink
        self.clock = clock
        self.playback = Playback(speed, clock)
        """Pause, resume, speed, seek, stop; the pacing by recorded time."""
        self._queue: asyncio.Queue[list[Event] | None] | None = (
            asyncio.Queue(maxsize=10_000) if collect and sink is None else None
        )
        self._pending: deque[Event] = deque()
        self._ended = False
        self._task: asyncio.Task[None] | None = None
        self._last_state = "started"
        self.position = 0.0
        """The recorded time replayed so far."""

    @property
    def speed(self) -> float:
        """Recorded seconds per second of replay; 0 = as fast as it goes."""
        return self.playback.speed

    # --- as a feed -------------------------------------------------------------------------

    def _start_task(self, name: str) -> None:
        self._task = asyncio.create_task(self._run(), name=name)

    async def _stop_task(self) -> None:
        self.playback.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def wait_finished(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)

    def __aiter__(self) -> Replaying:
        return self

    async def __anext__(self) -> Event:
        return await next_event(self)

    def subscriptions(self) -> dict[str, list[str]]:
        return {}

    async def subscribe(self, channel: str, products: Sequence[str] | None = None) -> None:
        raise ConfigError("a replay plays what was recorded: its channels cannot change")

    async def unsubscribe(self, channel: str, products: Sequence[str] | None = None) -> None:
        raise ConfigError("a replay plays what was recorded: its channels cannot change")

    async def control(self, action: str, **args: Any) -> None:
        """``pause``, ``resume``, ``stop``, ``seek`` (``timestamp``: recorded UNIX seconds), ``speed``,
        ``before_gap`` (a minute before the last gap, close or stale feed)."""
        if action == "before_gap":  # what happened before the disconnect: a minute before the last one
            trouble = await self._last_trouble()
            if trouble is None:
                raise ConfigError("this history has no gap, close or stale feed")
            self.playback.seek(trouble - 60.0, self.first, self.last)
            return
        state = self.playback.control(action, args, self.first, self.last)
        if state is not None:
            await self._say(state)

    async def _last_trouble(self) -> float | None:
        raise NotImplementedError

    # --- the replay ------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._say("started")
            at = self.start
            while not self.playback.stopped:
                seek = await self._play(at)
                if seek is None:
                    break
                at = seek  # a seek: the state is rebuilt from the start, silently, up to there
            await self._say("stopped" if self.playback.stopped else "completed")
        finally:
            if self._queue is not None:
                with contextlib.suppress(asyncio.QueueFull):
                    self._queue.put_nowait(None)

    async def _play(self, at: float) -> float | None:
        raise NotImplementedError

    def _rebuilding(self) -> None:
        """A play begins: the store starts empty (the header keeps saying REPLAY), the clock anew."""
        self.store.reset()
        self.store.apply(self._replay_state(self._last_state))
        self.playback.begin()

    def _replay_state(self, state: str) -> ReplayState:
        return ReplayState(
            self.venue,
            time.time(),
            "replay",
            state,
            ",".join(self.products),
            self.position,
            self.start,
            self.end,
            self.speed,
        )

    async def _say(self, state: str) -> None:
        self._last_state = state
        ev = self._replay_state(state)
        self.store.apply(ev)
        await self._hand_on([ev])

    async def _hand_on(self, events: list[Event]) -> None:
        self.store.replay_progress(self.position)
        if self.sink is not None:
            result = self.sink(events)
            if result is not None:
                await result
        elif self._queue is not None:
            await self._queue.put(events)
