"""Startup and shutdown: ``on_startup`` / ``on_shutdown`` hooks, ``on_event``, a
``lifespan`` context manager and ``app.state``, all on the event loop handlers run on."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spikard import Spikard
from spikard.testing import TestClient


class Pool:
    """Stands for a connection pool: opened at startup, closed at shutdown."""

    def __init__(self) -> None:
        self.open = True
        self.queries = 0

    def query(self) -> int:
        assert self.open, "pool used after close"
        self.queries += 1
        return self.queries

    def close(self) -> None:
        self.open = False


def test_startup_and_shutdown_hooks_sync_and_async():
    events: list[str] = []
    app = Spikard()

    @app.on_startup
    def sync_startup() -> None:
        events.append("startup-sync")

    @app.on_startup
    async def async_startup() -> None:
        await asyncio.sleep(0)
        events.append("startup-async")

    @app.on_shutdown
    async def async_shutdown() -> None:
        await asyncio.sleep(0)
        events.append("shutdown-async")

    @app.on_shutdown
    def sync_shutdown() -> None:
        events.append("shutdown-sync")

    @app.get("/events")
    def read_events() -> list[str]:
        return list(events)

    assert events == []
    with TestClient(app) as client:
        assert events == ["startup-sync", "startup-async"]
        assert client.get("/events").json() == ["startup-sync", "startup-async"]
        assert events == ["startup-sync", "startup-async"]
    assert events == ["startup-sync", "startup-async", "shutdown-async", "shutdown-sync"]


def test_decorators_return_the_function():
    app = Spikard()

    def hook() -> None:
        pass

    assert app.on_startup(hook) is hook
    assert app.on_shutdown(hook) is hook
    assert app.on_event("startup")(hook) is hook


@pytest.mark.parametrize("is_async", [False, True])
def test_on_event_startup_and_shutdown(is_async):
    events: list[str] = []
    app = Spikard()

    if is_async:

        @app.on_event("startup")
        async def startup() -> None:
            events.append("startup")

        @app.on_event("shutdown")
        async def shutdown() -> None:
            events.append("shutdown")

    else:

        @app.on_event("startup")
        def startup() -> None:
            events.append("startup")

        @app.on_event("shutdown")
        def shutdown() -> None:
            events.append("shutdown")

    @app.get("/")
    def index() -> int:
        return len(events)

    with TestClient(app) as client:
        assert client.get("/").json() == 1
    assert events == ["startup", "shutdown"]


def test_on_event_with_an_unknown_event_is_an_error():
    with pytest.raises(ValueError, match="unknown event"):
        Spikard().on_event("boot")


def test_hooks_given_to_the_constructor():
    events: list[str] = []

    async def startup() -> None:
        events.append("startup")

    def shutdown() -> None:
        events.append("shutdown")

    app = Spikard(on_startup=[startup], on_shutdown=[shutdown])
    with TestClient(app):
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


def lifespan_app(events: list[str]) -> Spikard:
    @contextlib.asynccontextmanager
    async def lifespan(app: Spikard) -> AsyncIterator[None]:
        events.append("lifespan-enter")
        app.state.pool = Pool()
        await asyncio.sleep(0)
        yield
        app.state.pool.close()
        events.append("lifespan-exit")

    app = Spikard(lifespan=lifespan)

    @app.on_startup
    def startup() -> None:
        events.append("startup-hook")

    @app.on_shutdown
    def shutdown() -> None:
        events.append("shutdown-hook")
        assert app.state.pool.open

    @app.get("/query/async")
    async def query_async() -> dict[str, Any]:
        return {"n": app.state.pool.query()}

    @app.get("/query/sync")
    def query_sync() -> dict[str, Any]:
        return {"n": app.state.pool.query()}

    return app


def test_lifespan_resource_in_app_state_is_used_by_handlers():
    events: list[str] = []
    app = lifespan_app(events)
    with TestClient(app) as client:
        assert client.get("/query/async").json() == {"n": 1}
        assert client.get("/query/sync").json() == {"n": 2}
        pool = app.state.pool
        assert pool.open
    assert not pool.open


def test_lifespan_order_around_the_hooks():
    events: list[str] = []
    with TestClient(lifespan_app(events)):
        assert events == ["lifespan-enter", "startup-hook"]
    assert events == ["lifespan-enter", "startup-hook", "shutdown-hook", "lifespan-exit"]


def test_lifespan_receives_the_app():
    received: list[Any] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Spikard) -> AsyncIterator[None]:
        received.append(app)
        yield

    app = Spikard(lifespan=lifespan)
    with TestClient(app):
        pass
    assert received == [app]


def test_lifespan_yielded_dict_updates_app_state():
    @contextlib.asynccontextmanager
    async def lifespan(app: Spikard) -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "hello", "counter": [0]}

    app = Spikard(lifespan=lifespan)
    app.state.kept = "set before start"

    @app.get("/state")
    async def read_state() -> dict[str, Any]:
        app.state.counter[0] += 1
        return {"greeting": app.state.greeting, "counter": app.state.counter[0], "kept": app.state.kept}

    with TestClient(app) as client:
        assert client.get("/state").json() == {"greeting": "hello", "counter": 1, "kept": "set before start"}
        assert client.get("/state").json()["counter"] == 2
    assert app.state.greeting == "hello"


def test_missing_state_attribute_is_an_attribute_error():
    app = Spikard()
    with pytest.raises(AttributeError, match="nothing_here"):
        _ = app.state.nothing_here


def loop_app() -> Spikard:
    app = Spikard()

    @app.on_startup
    async def startup() -> None:
        app.state.loop = asyncio.get_running_loop()
        app.state.thread = threading.get_ident()
        app.state.queue = asyncio.Queue()
        app.state.lock = asyncio.Lock()
        app.state.event = asyncio.Event()
        app.state.results = {}

        async def worker() -> None:
            while True:
                n, future = await app.state.queue.get()
                await asyncio.sleep(0.005)
                future.set_result(n * 2)

        app.state.worker = asyncio.create_task(worker())

    @app.on_shutdown
    async def shutdown() -> None:
        app.state.shutdown_loop = asyncio.get_running_loop()
        app.state.worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app.state.worker

    @app.get("/loop")
    async def same_loop() -> dict[str, bool]:
        return {
            "same_loop": asyncio.get_running_loop() is app.state.loop,
            "same_thread": threading.get_ident() == app.state.thread,
        }

    @app.get("/lock")
    async def use_lock() -> dict[str, bool]:
        async with app.state.lock:
            await asyncio.sleep(0.001)
        return {"locked_now": app.state.lock.locked()}

    @app.get("/queue/{n:int}")
    async def use_queue(n: int) -> int:
        future = asyncio.get_running_loop().create_future()
        await app.state.queue.put((n, future))
        return await asyncio.wait_for(future, 5)

    @app.get("/event/set")
    async def set_event() -> bool:
        app.state.event.set()
        return True

    @app.get("/event/wait")
    async def wait_event() -> bool:
        await asyncio.wait_for(app.state.event.wait(), 5)
        return app.state.event.is_set()

    return app


@pytest.fixture(scope="module")
def loop_client():
    app = loop_app()
    with TestClient(app) as client:
        yield client
    assert app.state.worker.cancelled()
    assert app.state.shutdown_loop is app.state.loop


def test_startup_runs_on_the_handlers_event_loop(loop_client):
    for _ in range(3):
        assert loop_client.get("/loop").json() == {"same_loop": True, "same_thread": True}


def test_lock_made_at_startup_works_in_handlers(loop_client):
    assert loop_client.get("/lock").json() == {"locked_now": False}


@pytest.mark.parametrize("n", [1, 21, 100])
def test_queue_and_task_made_at_startup_serve_handlers(loop_client, n):
    assert loop_client.get(f"/queue/{n}").json() == n * 2


def test_event_made_at_startup_works_in_handlers(loop_client):
    assert loop_client.get("/event/set").json() is True
    assert loop_client.get("/event/wait").json() is True


def test_startup_hooks_run_again_on_each_start():
    counter = {"startups": 0, "shutdowns": 0}
    app = Spikard()

    @app.on_startup
    async def startup() -> None:
        counter["startups"] += 1
        app.state.loop = asyncio.get_running_loop()

    @app.on_shutdown
    def shutdown() -> None:
        counter["shutdowns"] += 1

    @app.get("/loop")
    async def loop_check() -> bool:
        return asyncio.get_running_loop() is app.state.loop

    for run in (1, 2):
        with TestClient(app) as client:
            assert client.get("/loop").json() is True
            assert counter == {"startups": run, "shutdowns": run - 1}
    assert counter == {"startups": 2, "shutdowns": 2}


def test_shutdown_runs_when_a_client_used_without_with_is_closed():
    events: list[str] = []
    app = Spikard(on_startup=[lambda: events.append("up")], on_shutdown=[lambda: events.append("down")])

    @app.get("/")
    def index() -> str:
        return "x"

    client = TestClient(app)
    assert events == []
    assert client.get("/").json() == "x"
    assert events == ["up"]
    client.close()
    assert events == ["up", "down"]


class StartupFailed(Exception):
    pass


@pytest.mark.parametrize("is_async", [False, True])
def test_failing_startup_hook_makes_the_start_raise_it(is_async):
    app = Spikard()
    shutdowns: list[str] = []

    if is_async:

        @app.on_startup
        async def startup() -> None:
            await asyncio.sleep(0)
            raise StartupFailed("database unreachable")

    else:

        @app.on_startup
        def startup() -> None:
            raise StartupFailed("database unreachable")

    app.on_shutdown(lambda: shutdowns.append("shutdown"))

    with pytest.raises(StartupFailed, match="database unreachable"), TestClient(app):
        pass
    client = TestClient(app)
    with pytest.raises(StartupFailed, match="database unreachable"):
        client.get("/")
    client.close()
    assert shutdowns == []


def test_failing_lifespan_makes_the_start_raise_it():
    @contextlib.asynccontextmanager
    async def lifespan(app: Spikard) -> AsyncIterator[None]:
        raise StartupFailed("lifespan could not start")
        yield

    with pytest.raises(StartupFailed, match="lifespan could not start"), TestClient(Spikard(lifespan=lifespan)):
        pass


def test_failing_startup_hook_still_exits_the_lifespan():
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Spikard) -> AsyncIterator[None]:
        events.append("enter")
        try:
            yield
        finally:
            events.append("exit")

    app = Spikard(lifespan=lifespan)

    @app.on_startup
    def startup() -> None:
        raise StartupFailed("after the lifespan entered")

    with pytest.raises(StartupFailed), TestClient(app):
        pass
    assert events == ["enter", "exit"]


def test_failed_start_leaves_the_app_able_to_start_later():
    attempts = {"n": 0}
    app = Spikard()

    @app.on_startup
    def flaky_startup() -> None:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise StartupFailed("first attempt")

    @app.get("/")
    def index() -> int:
        return attempts["n"]

    with pytest.raises(StartupFailed), TestClient(app):
        pass
    with TestClient(app) as client:
        assert client.get("/").json() == 2
