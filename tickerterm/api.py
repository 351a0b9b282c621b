"""The library surface: open a venue feed (live or on the built-in simulator) and read its events."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

from tickerterm.core.alerts import Alerts, parse_rule
from tickerterm.core.boundary import secrets_of
from tickerterm.core.consolidated import Consolidator, assets
from tickerterm.core.errors import ConfigError
from tickerterm.core.events import Event
from tickerterm.core.store import Store
from tickerterm.record.sqlite import DEFAULT_MAX_BYTES
from tickerterm.record.sqlite import Recorder as SqliteRecorder
from tickerterm.sim import SimServer, simulator_class
from tickerterm.stream.feed import Feed, Recorder
from tickerterm.stream.feeds import Feeds, venues_for_rule
from tickerterm.stream.policy import RetryPolicy
from tickerterm.stream.worker import Sink
from tickerterm.venues import VenueAdapter, venue_class
from tickerterm.venues.session import ReplayPlan


@contextlib.asynccontextmanager
async def open_feed(
    venue: str,
    products: Sequence[str],
    channels: Iterable[str] | None = None,
    *,
    url: str | None = None,
    user_url: str | None = None,
    sim: bool = False,
    sim_options: dict[str, Any] | None = None,
    key_file: str | None = None,
    sandbox: bool = False,
    rest_url: str | None = None,
    policy: RetryPolicy | None = None,
    collect: bool = True,
    sink: Sink | None = None,
    store: Store | None = None,
    replay: ReplayPlan | None = None,
    record: str | None = None,
    record_max: int = DEFAULT_MAX_BYTES,
    record_for: float = 0.0,
    alerts: Sequence[str] = (),
    alert_exec: str | None = None,
    alert_exec_timeout: float = 10.0,
    bars: int | None = None,
    source: str | None = None,
    relay: str = "tickerterm",
) -> AsyncIterator[Feed]:
    """A started ``Feed`` for ``venue``; with ``sim=True`` the venue is the built-in simulator on a
    loopback port (the feed's ``sim`` attribute), with a generated key for its test account.
    ``record=PATH`` keeps the session in a SQLite file (``tickerterm replay PATH`` plays it back; the
    README documents its tables), at most ``record_max`` bytes and ``record_for`` seconds (0: no age
    limit). ``alerts`` are rules (``tickerterm.core.alerts``: ``"BTC-USD > 65000"``...): each that fires
    is an ``Alert`` event, applied to the store and handed on like any other. ``bars=60`` says each
    one-minute bar built from trades when it closes, as a ``Candle`` with ``source="trades"``, its volume
    and VWAP. ``source="nats://host:4222"`` reads the feed from a relay (``tickerterm relay``, named
    ``relay``) instead of the venue: a ``RelayFeed``, used the same way."""
    cls = venue_class(venue)
    rules = [parse_rule(text) for text in alerts]  # bad rules are bad input, before anything starts
    if source is not None:
        given: dict[str, object] = {
            "sim": sim,
            "url": url,
            "user_url": user_url,
            "key_file": key_file,
            "sandbox": sandbox,
            "rest_url": rest_url,
            "replay": replay,
            "record": record,
            "alert_exec": alert_exec,
            "bars": bars,
        }
        clash = [name for name, value in given.items() if value]
        if clash:  # the relay holds the venue connection: these would be silently ignored
            raise ConfigError(f"source= reads a relay: {', '.join(clash)} cannot apply")
        async with _relay_feed(
            source, relay, cls(), products, channels, policy, collect, sink, store, alerts
        ) as viewer:
            yield viewer
        return
    server: SimServer | None = None
    credentials: Any = None
    urls: dict[str, str] = {}
    if sim:
        server = simulator_class(cls.name)(**dict(sim_options or {}))
        credentials = server.client_credentials()  # the simulator's test account
        await server.start()
        urls = {name: server.http_url if name == "rest" else server.url for name in cls.endpoints}
    else:
        credentials = cls.load_credentials(key_file)
        if sandbox:
            urls.update(cls.sandbox_endpoints)
        if rest_url:
            urls["rest"] = rest_url
        if url:
            urls["market"] = url
            urls.setdefault("user", user_url or url)
        if user_url:
            urls["user"] = user_url
    recorder: Recorder | None = None
    try:
        adapter = cls(urls=urls, credentials=credentials)
        for rule in rules:
            if rule.product is not None:
                rule.product = adapter.normalize_product(rule.product)
        if record is not None:
            recorder = await open_recording(record, adapter, products, channels, record_max, record_for)
        feed = Feed(
            adapter,
            products,
            channels,
            policy=policy,
            collect=collect,
            sink=sink,
            store=store,
            replay=replay,
            recorder=recorder,
            alerts=Alerts(rules, adapter.name),  # empty is cheap: the dashboard's `a` adds rules
            alert_command=alert_exec,
            alert_timeout=alert_exec_timeout,
            bars=bars,
        )
        feed.sim = server  # type: ignore[attr-defined]
        async with feed:
            yield feed
    finally:
        if recorder is not None:
            await recorder.aclose()  # after the feed's own close: nothing is left to write then
        if server is not None:
            await server.stop()


@contextlib.asynccontextmanager
async def open_feeds(
    products: Mapping[str, Sequence[str]],
    channels: Mapping[str, Iterable[str]] | None = None,
    *,
    sim: bool = False,
    sim_options: dict[str, Any] | None = None,
    urls: Mapping[str, str] | None = None,
    key_files: Mapping[str, str] | None = None,
    policy: RetryPolicy | None = None,
    collect: bool = True,
    sink: Sink | None = None,
    store: Store | None = None,
    alerts: Sequence[str] = (),
    alert_exec: str | None = None,
    alert_exec_timeout: float = 10.0,
    bars: int | None = None,
    same_quote: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    source: str | None = None,
    relay: str = "tickerterm",
) -> AsyncIterator[Feeds]:
    """Several venues on one store: ``products`` by venue (``{"coinbase": ["BTC-USD"], "bitzoom":
    ["BTC-USDT"]}``), ``channels`` by venue (default: each venue's own). With ``sim=True`` each venue is
    its own simulator. An alert rule applies to the venue it names (``coinbase:BTC-USD > 65000``) or to
    every venue that has its product. The consolidated book (``tickerterm.core.consolidated``) covers each
    asset listed on two markets or more; ``same_quote={"USDT": "USD"}`` counts a quote as another."""
    if not products:
        raise ConfigError("no venue given")
    given = {venue_class(name).name: name for name in products}  # the venue's own name -> as given
    if len(given) < len(products):
        raise ConfigError(f"a venue is given twice: {', '.join(products)}")
    adapters = {venue: venue_class(venue)() for venue in given}
    normalized = {
        venue: [adapters[venue].normalize_product(p) for p in products[name]] for venue, name in given.items()
    }
    rules_for = alerts_by_venue(alerts, adapters, normalized)
    groups, apart = assets(
        ((venue, p, adapters[venue].base_quote(p)) for venue, ps in normalized.items() for p in ps),
        same_quote or {},
    )
    hub = Feeds(
        store or Store(clock=clock),
        collect=collect,
        sink=sink,
        derived=Consolidator(groups) if groups else None,
        clock=clock,
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(hub.stop)
        for venue, name in given.items():
            if source is not None:  # each venue read from the relay, on one store
                viewer = await stack.enter_async_context(
                    _relay_feed(
                        source,
                        relay,
                        adapters[venue],
                        normalized[venue],
                        None if channels is None else channels.get(name),
                        policy,
                        False,
                        hub.sink,
                        hub.store,
                        rules_for[venue],
                        conn=f"{venue}/relay",
                    )
                )
                hub.add(viewer)
                continue
            feed = await stack.enter_async_context(
                open_feed(
                    venue,
                    normalized[venue],
                    None if channels is None else channels.get(name),
                    url=(urls or {}).get(name),
                    sim=sim,
                    sim_options=sim_options,
                    key_file=(key_files or {}).get(name),
                    policy=policy,
                    sink=hub.sink,
                    store=hub.store,
                    alerts=rules_for[venue],
                    alert_exec=alert_exec,
                    alert_exec_timeout=alert_exec_timeout,
                    bars=bars,
                )
            )
            hub.add(feed)
        hub.assets, hub.apart = groups, apart
        await hub.start()
        yield hub


@contextlib.asynccontextmanager
async def _relay_feed(
    source: str,
    relay: str,
    adapter: VenueAdapter,
    products: Sequence[str],
    channels: Iterable[str] | None,
    policy: RetryPolicy | None,
    collect: bool,
    sink: Sink | None,
    store: Store | None,
    alerts: Sequence[str],
    conn: str = "relay",
) -> AsyncIterator[Any]:
    """A started ``RelayFeed`` (``tickerterm.stream.relay``; nats-py loads only when it is asked for)."""
    from tickerterm.core.relay import stream_names
    from tickerterm.stream.relay import RelayFeed

    root, stream = stream_names(relay)
    viewer = RelayFeed(
        source,
        adapter,
        products,
        channels,
        root=root,
        stream=stream,
        policy=policy,
        collect=collect,
        sink=sink,
        store=store,
        alerts=alerts,
        conn=conn,
    )
    async with viewer:
        yield viewer


def alerts_by_venue(
    texts: Sequence[str], adapters: Mapping[str, VenueAdapter], products: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Each rule for the venues it applies to: the one it names, or every venue showing its product (a
    rule that no venue here can take is bad input)."""
    out: dict[str, list[str]] = {name: [] for name in adapters}
    for text in texts:
        for name in venues_for_rule(parse_rule(text), text, adapters, products):
            out[name].append(text)
    return out


async def open_recording(
    target: str,
    adapter: VenueAdapter,
    products: Sequence[str],
    channels: Iterable[str] | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_seconds: float = 0.0,
) -> Recorder:
    """A started recorder for a feed of ``adapter``: a SQLite file, or a PostgreSQL server for a
    ``postgresql://`` target (ConfigError when it cannot be written)."""
    if target.startswith(("postgresql://", "postgres://")):
        from tickerterm.record.postgres import PgRecorder

        server = PgRecorder(target)
        await server.start()
        return server
    names = list(channels) if channels is not None else list(adapter.default_channels)
    meta = {"venue": adapter.name, "products": list(products), "channels": names}
    recorder = SqliteRecorder(
        target,
        max_bytes=max_bytes,
        max_seconds=max_seconds,
        secrets=secrets_of(adapter.credentials),
        meta=meta,
    )
    try:
        recorder.start()
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot record to {target}: {exc}") from None
    return recorder


async def stream(
    venue: str,
    products: Sequence[str],
    channels: Iterable[str] | None = None,
    **options: Any,
) -> AsyncIterator[Event]:
    """Every normalized event of a venue feed, as it is applied::

    async for event in tickerterm.stream("coinbase", ["BTC-USD"], ["level2"], sim=True):
        print(event)
    """
    async with open_feed(venue, products, channels, **options) as feed:
        async for event in feed:
            yield event
