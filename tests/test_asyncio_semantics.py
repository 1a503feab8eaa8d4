"""What asyncio code may rely on inside handlers, and where sync handlers run.

``async def`` handlers are first stepped directly by the runtime and continue as
tasks of the serving thread's loop; everything asyncio promises a task must hold
from the handler's first line. Plain ``def`` handlers run in a thread pool.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from spikard import Spikard
from spikard._asyncio_bridge import listed_tasks
from spikard.testing import TestClient

app = Spikard()
request_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_var", default=None)
background: dict[str, asyncio.Task[None]] = {}
background_done: dict[str, bool] = {}
sync_gate = threading.Event()
sync_state = {"in_flight": 0}
sync_lock = threading.Lock()


# --- current task ---------------------------------------------------------------


@app.get("/task/identity")
async def task_identity() -> dict[str, object]:
    before = asyncio.current_task()
    await asyncio.sleep(0)
    after = asyncio.current_task()
    await asyncio.sleep(0.01)
    later = asyncio.current_task()
    return {
        "before_is_task": isinstance(before, asyncio.Task),
        "after_is_task": isinstance(after, asyncio.Task),
        "same_after_first_await": before is after,
        "same_after_timer": before is later,
    }


@app.get("/task/no-await")
async def task_no_await() -> dict[str, object]:
    task = asyncio.current_task()
    return {"is_task": isinstance(task, asyncio.Task), "done": None if task is None else task.done()}


# --- timeouts -------------------------------------------------------------------


@app.get("/timeout/before-first-await/expires")
async def timeout_first_expires() -> dict[str, object]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(5)
    except TimeoutError:
        return {"timed_out": True, "elapsed": loop.time() - start}
    return {"timed_out": False, "elapsed": loop.time() - start}


@app.get("/timeout/before-first-await/ok")
async def timeout_first_ok() -> dict[str, object]:
    async with asyncio.timeout(5):
        await asyncio.sleep(0.01)
    return {"finished": True}


@app.get("/timeout/after-first-await/expires")
async def timeout_after_expires() -> dict[str, object]:
    await asyncio.sleep(0)
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(5)
    except TimeoutError:
        return {"timed_out": True}
    return {"timed_out": False}


@app.get("/timeout/after-first-await/ok")
async def timeout_after_ok() -> dict[str, object]:
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await asyncio.sleep(0.01)
    return {"finished": True}


@app.get("/timeout/wait-for")
async def timeout_wait_for() -> dict[str, object]:
    try:
        await asyncio.wait_for(asyncio.sleep(5), timeout=0.05)
    except TimeoutError:
        return {"timed_out": True}
    return {"timed_out": False}


@app.get("/timeout/already-expired")
async def timeout_already_expired() -> dict[str, object]:
    try:
        async with asyncio.timeout(0):
            await asyncio.sleep(5)
    except TimeoutError:
        return {"timed_out": True}
    return {"timed_out": False}


@app.get("/timeout/caught-then-continue")
async def timeout_caught_then_continue() -> dict[str, object]:
    try:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(5)
    except TimeoutError:
        pass
    await asyncio.sleep(0.02)  # the task is usable again: no stray cancellation
    return {"continued": True, "cancelling": asyncio.current_task().cancelling()}


# --- loop, gather, tasks --------------------------------------------------------


@app.get("/loop")
async def running_loop() -> dict[str, object]:
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_soon(future.set_result, "from call_soon")
    value = await future
    return {
        "running": loop.is_running(),
        "same_loop_as_task": loop is asyncio.current_task().get_loop(),
        "value": value,
    }


@app.get("/gather")
async def gather() -> list[int]:
    async def after(delay: float, value: int) -> int:
        await asyncio.sleep(delay)
        return value

    return list(await asyncio.gather(after(0.03, 1), after(0.01, 2), after(0.02, 3)))


@app.get("/create-task/awaited")
async def create_task_awaited() -> dict[str, object]:
    async def child() -> str:
        await asyncio.sleep(0.01)
        return "child result"

    task = asyncio.create_task(child())  # before the handler's first await
    return {"result": await task}


@app.get("/background/start")
async def background_start(key: str) -> dict[str, object]:
    gate = asyncio.Event()

    async def work() -> None:
        await gate.wait()
        await asyncio.sleep(0.05)
        background_done[key] = True

    background_done[key] = False
    background[key] = asyncio.create_task(work())
    asyncio.get_running_loop().call_later(0.02, gate.set)
    return {"done": background[key].done()}


@app.get("/background/status")
async def background_status(key: str) -> dict[str, object]:
    task = background[key]
    return {"task_done": task.done(), "work_done": background_done[key]}


@app.get("/task-group")
async def task_group() -> dict[str, object]:
    async def child(value: int) -> int:
        await asyncio.sleep(0.01 * value)
        return value * 10

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(child(n)) for n in (1, 2, 3)]
    return {"results": [t.result() for t in tasks]}


@app.get("/task-group/failing")
async def task_group_failing() -> dict[str, object]:
    async def boom() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("child failed")

    async def slow() -> None:
        await asyncio.sleep(5)

    caught: list[str] = []
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(boom())
            group.create_task(slow())
    except* ValueError as group_error:
        caught.extend(str(e) for e in group_error.exceptions)
    return {"caught": caught}


@app.get("/all-tasks")
async def all_tasks() -> dict[str, object]:
    before = asyncio.current_task() in asyncio.all_tasks()
    await asyncio.sleep(0)
    after = asyncio.current_task() in asyncio.all_tasks()
    return {"before_first_await": before, "after_first_await": after}


@app.get("/executor")
async def executor() -> dict[str, object]:
    loop = asyncio.get_running_loop()
    from_executor = await loop.run_in_executor(None, lambda: 6 * 7)
    from_thread = await asyncio.to_thread(lambda: threading.current_thread() is not threading.main_thread())
    return {"run_in_executor": from_executor, "to_thread_off_main": from_thread}


# --- contextvars ----------------------------------------------------------------


@app.get("/ctx/async")
async def ctx_async(value: str, delay: float = 0.0) -> dict[str, object]:
    seen_before = request_var.get()
    request_var.set(value)
    if delay:
        await asyncio.sleep(delay)
    return {"before": seen_before, "after": request_var.get()}


@app.get("/ctx/async-no-await")
async def ctx_async_no_await(value: str) -> dict[str, object]:
    seen_before = request_var.get()
    request_var.set(value)
    return {"before": seen_before, "after": request_var.get()}


@app.get("/ctx/sync")
def ctx_sync(value: str) -> dict[str, object]:
    seen_before = request_var.get()
    request_var.set(value)
    return {"before": seen_before, "after": request_var.get()}


@app.get("/ctx/inherited")
async def ctx_inherited(value: str) -> dict[str, object]:
    request_var.set(value)

    async def child() -> str | None:
        seen = request_var.get()
        request_var.set("changed by child")
        return seen

    seen_by_child = await asyncio.create_task(child())
    return {"seen_by_child": seen_by_child, "after_child": request_var.get()}


# --- concurrency ----------------------------------------------------------------


@app.get("/sleep")
async def sleep_200ms() -> dict[str, bool]:
    await asyncio.sleep(0.2)
    return {"slept": True}


@app.get("/thread/sync")
def thread_sync() -> dict[str, str]:
    return {"thread": threading.current_thread().name}


@app.get("/thread/async")
async def thread_async() -> dict[str, str]:
    return {"thread": threading.current_thread().name}


@app.get("/blocking-sync")
def blocking_sync() -> dict[str, bool]:
    with sync_lock:
        sync_state["in_flight"] += 1
    try:
        released = sync_gate.wait(timeout=10)  # blocks its thread like time.sleep would
        time.sleep(0.3)
        return {"released": released}
    finally:
        with sync_lock:
            sync_state["in_flight"] -= 1


@app.get("/fast")
async def fast() -> dict[str, int]:
    return {"sync_in_flight": sync_state["in_flight"]}


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as client:
        yield client


def get_json(client: TestClient, path: str, **options) -> object:
    response = client.get(path, **options)
    assert response.status_code == 200, response.text
    return response.json()


def test_current_task_is_a_task_and_the_same_object_across_awaits(client):
    assert get_json(client, "/task/identity") == {
        "before_is_task": True,
        "after_is_task": True,
        "same_after_first_await": True,
        "same_after_timer": True,
    }


def test_current_task_is_a_running_task_in_a_handler_that_never_awaits(client):
    assert get_json(client, "/task/no-await") == {"is_task": True, "done": False}


@pytest.mark.parametrize("where", ["before-first-await", "after-first-await"])
def test_asyncio_timeout_that_expires_raises_timeouterror_inside_the_handler(client, where):
    started = time.monotonic()
    body = get_json(client, f"/timeout/{where}/expires")
    assert body["timed_out"] is True
    # The 5 s sleep was cut short by the timeout, not waited out.
    assert time.monotonic() - started < 4


@pytest.mark.parametrize("where", ["before-first-await", "after-first-await"])
def test_asyncio_timeout_that_does_not_expire_lets_the_body_finish(client, where):
    assert get_json(client, f"/timeout/{where}/ok") == {"finished": True}


def test_asyncio_wait_for_times_out_inside_the_handler(client):
    assert get_json(client, "/timeout/wait-for") == {"timed_out": True}


def test_timeout_already_expired_on_entry_cancels_the_first_await(client):
    assert get_json(client, "/timeout/already-expired") == {"timed_out": True}


def test_handler_continues_normally_after_catching_a_timeout(client):
    assert get_json(client, "/timeout/caught-then-continue") == {"continued": True, "cancelling": 0}


def test_current_task_is_listed_in_all_tasks_before_and_after_the_first_await(client):
    assert get_json(client, "/all-tasks") == {"before_first_await": True, "after_first_await": True}


def test_run_in_executor_and_to_thread_work(client):
    assert get_json(client, "/executor") == {"run_in_executor": 42, "to_thread_off_main": True}


def test_get_running_loop_is_the_running_loop_of_the_task(client):
    assert get_json(client, "/loop") == {"running": True, "same_loop_as_task": True, "value": "from call_soon"}


def test_gather_of_several_sleeps_returns_results_in_order(client):
    assert get_json(client, "/gather") == [1, 2, 3]


def test_create_task_before_first_await_can_be_awaited(client):
    assert get_json(client, "/create-task/awaited") == {"result": "child result"}


def test_task_created_by_a_request_outlives_it_and_completes(client):
    assert get_json(client, "/background/start", params={"key": "outlive"}) == {"done": False}
    deadline = time.monotonic() + 5
    status = get_json(client, "/background/status", params={"key": "outlive"})
    while not status["task_done"] and time.monotonic() < deadline:
        time.sleep(0.01)
        status = get_json(client, "/background/status", params={"key": "outlive"})
    assert status == {"task_done": True, "work_done": True}


def test_task_group_runs_children_to_completion(client):
    assert get_json(client, "/task-group") == {"results": [10, 20, 30]}


def test_task_group_failure_cancels_siblings_and_is_catchable(client):
    started = time.monotonic()
    assert get_json(client, "/task-group/failing") == {"caught": ["child failed"]}
    assert time.monotonic() - started < 4  # the 5 s sibling was cancelled


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/ctx/async", {"delay": "0.01"}),
        ("/ctx/async", {}),
        ("/ctx/async-no-await", {}),
        ("/ctx/sync", {}),
    ],
    ids=["async-with-await", "async-delay-zero", "async-no-await", "sync"],
)
def test_contextvar_set_in_one_request_is_not_seen_by_the_next(client, path, extra):
    for value in ("first", "second", "third"):
        body = get_json(client, path, params={"value": value, **extra})
        assert body == {"before": None, "after": value}


def test_tasks_created_by_a_request_inherit_its_context_without_leaking_back(client):
    for value in ("one", "two"):
        body = get_json(client, "/ctx/inherited", params={"value": value})
        assert body == {"seen_by_child": value, "after_child": value}


def test_contextvar_values_of_concurrent_requests_do_not_mix(client):
    def one(index: int) -> dict[str, object]:
        return get_json(client, "/ctx/async", params={"value": f"v{index}", "delay": "0.05"})

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(40)))
    assert results == [{"before": None, "after": f"v{i}"} for i in range(40)]


def test_a_hundred_concurrent_sleeping_requests_are_served_concurrently(client):
    get_json(client, "/sleep")  # warm up
    barrier = threading.Barrier(100)

    def one(_: int) -> int:
        barrier.wait()
        return client.get("/sleep").status_code

    with ThreadPoolExecutor(max_workers=100) as pool:
        started = time.monotonic()
        statuses = list(pool.map(one, range(100)))
        elapsed = time.monotonic() - started
    assert statuses == [200] * 100
    assert elapsed < 1.5, f"100 concurrent 0.2 s sleeps took {elapsed:.2f} s"


def test_sync_handlers_run_in_the_thread_pool_not_on_the_serving_thread(client):
    sync_thread = get_json(client, "/thread/sync")["thread"]
    serving_thread = get_json(client, "/thread/async")["thread"]
    assert sync_thread.startswith("spikard-sync")
    assert not serving_thread.startswith("spikard-sync")
    assert sync_thread != serving_thread


def test_blocking_sync_handlers_do_not_block_async_routes(client):
    sync_gate.clear()
    with ThreadPoolExecutor(max_workers=5) as pool:
        slow = [pool.submit(client.get, "/blocking-sync") for _ in range(5)]
        try:
            deadline = time.monotonic() + 5
            while sync_state["in_flight"] < 5 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert sync_state["in_flight"] == 5, "the 5 blocking sync requests did not all start"
            # Answered while all five sync handlers are still blocked.
            assert get_json(client, "/fast", timeout=3) == {"sync_in_flight": 5}
        finally:
            sync_gate.set()
        responses = [future.result(timeout=10) for future in slow]
    assert [r.status_code for r in responses] == [200] * 5
    assert all(r.json() == {"released": True} for r in responses)


def test_finished_requests_leave_no_task_behind(client):
    """Every request's task is listed in asyncio.all_tasks() while it runs; none is
    left in asyncio's task registry once answered, on either path."""
    registry = listed_tasks  # the set of asyncio's that the runtime lists stepped tasks in
    before = len(registry)
    for _ in range(50):
        assert client.get("/task/no-await").status_code == 200  # finishes in its first step
        assert client.get("/all-tasks").status_code == 200  # suspends, then finishes as a task
    deadline = time.monotonic() + 5
    while len(registry) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(registry) <= before, f"{len(registry) - before} task references left behind"
