"""The pure parts of ``spikard profile`` on fixed inputs: oha's JSON summary, py-spy's
raw stacks and whose CPU each is, the retries of a refused request, and which route
a named request reaches."""

from __future__ import annotations

import json
from pathlib import Path

from spikard_devtools._checking import RETRY_STRINGS, retried
from spikard_devtools._load import parse
from spikard_devtools._named import BadRequests, assign_routes, from_file, from_urls
from spikard_devtools._requests import Probe
from spikard_devtools._stacks import Classifier, read_stacks, split

OHA_SUMMARY = {
    "summary": {"successRate": 1.0, "total": 2.0, "slowest": 0.01, "fastest": 0.0001, "average": 0.001},
    "latencyPercentiles": {"p10": 0.0001, "p50": 0.0005, "p99": 0.004, "p99.9": 0.008},
    "statusCodeDistribution": {"200": 1990, "500": 10},
    "errorDistribution": {"aborted due to deadline": 4, "connection closed": 2},
}


def test_oha_summary_gives_rates_in_seconds_and_real_errors_only():
    load = parse(OHA_SUMMARY)
    assert load.rate == 1000.0  # answered requests over the run's seconds
    assert (load.p50, load.p99) == (0.0005, 0.004)
    assert load.statuses == {"200": 1990, "500": 10}
    assert load.ok == 1990
    # Cut at the deadline by oha itself is not the server's failure; a closed connection is.
    assert load.errors == {"connection closed": 2}
    assert load.requests == 2002


APP = "/srv/shop"
SITE = "/usr/lib/python3.11/site-packages"
RUNTIME_RS = "/build/spikard/runtime/python/src"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
BASE = (
    f"<module> ({SITE}/spikard/__main__.py:21);serve ({RUNTIME_RS}/server.rs:282);"
    f"block_on (/cargo/registry/src/index.crates.io-1/tokio-1.54.1/src/runtime/runtime.rs:348);"
    f"poll_loop (/cargo/registry/src/index.crates.io-1/hyper-1.12.0/src/proto/h1/dispatch.rs:160)"
)
RAW = "\n".join(
    [
        # The app's handler, stepped by the runtime's bridge: the app's.
        f"{BASE};step ({RUNTIME_RS}/bridge.rs:313);work ({APP}/app.py:15);busy ({APP}/app.py:9) 50",
        # A C-library leaf under the runtime's Rust: the runtime's.
        f"{BASE};into_response ({RUNTIME_RS}/convert.rs:90);0x7f01 ({LIBC}) 20",
        # Writing a response: a system call, the kernel's (glibc's alias names it).
        f"{BASE};poll_flush (/x/hyper-1.12.0/src/proto/h1/io.rs:300);__GI___libc_writev ({LIBC}) 15",
        # Waiting: not CPU, whether the leaf is named or only an address under a wait.
        f"{BASE};park (/x/tokio/src/runtime/park.rs:1);epoll_wait ({LIBC}) 400",
        "Thread.run (/usr/lib/python3.11/threading.py:982);_queue_SimpleQueue_get_impl "
        f"(/b/Python-3.11.7/Modules/_queuemodule.c:1);pthread_cond_timedwait ({LIBC});0x7f02 ({LIBC}) 300",
        # The interpreter's own native code, called from the app.
        f"{BASE};step ({RUNTIME_RS}/bridge.rs:313);work ({APP}/app.py:15);"
        "dict_subscript (/usr/lib/libpython3.11.so.1.0) 5",
        # A library's Python code, and spikard's own Python glue.
        f"{BASE};step ({RUNTIME_RS}/bridge.rs:313);work ({APP}/app.py:15);dumps ({SITE}/orjson_like/x.py:3) 6",
        f"{BASE};finish_response ({SITE}/spikard/_responding.py:40) 4",
    ]
)


def test_each_sample_is_charged_to_whose_work_it_is_and_waits_are_not_cpu():
    cpu = split(read_stacks(RAW), Classifier(Path(APP), Path(f"{SITE}/spikard")))
    assert cpu.samples == 800
    assert cpu.idle == 700
    assert cpu.busy == 100
    assert dict(cpu.sides) == {"app": 50, "runtime": 24, "kernel": 15, "interpreter": 5, "libraries": 6}
    assert cpu.top("python")[0] == (f"busy ({APP}/app.py)", 0.5)
    assert cpu.system_calls == {"writev": 15}
    # Native self time goes to named code, the C library's addresses to their caller.
    assert "into_response (runtime/python/src/convert.rs)" in dict(cpu.top("native"))


def test_a_refused_value_is_retried_with_its_own_type_then_given_up():
    probe = Probe("POST", "/orders?when=x", (("x-id", "a"),), json.dumps({"n": 1, "at": "example"}).encode())
    errors = [{"loc": ["body", "n"]}, {"loc": ["body", "at"]}, {"loc": ["query", "when"]}]
    attempts: dict[str, int] = {}
    again = retried(probe, errors, attempts)
    assert again is not None
    assert json.loads(again.body) == {"n": 2, "at": RETRY_STRINGS[0]}
    assert again.target == f"/orders?when={RETRY_STRINGS[0].replace(':', '%3A')}"
    # A 422 naming no value (the handler's own), or a place this cannot change: no retry.
    assert retried(probe, [], {}) is None
    assert retried(probe, [{"loc": ["path", "id"]}], {}) is None
    # Each place gets each candidate once, then the retries end.
    attempts = {}
    tries = 0
    while (probe := retried(probe, [{"loc": ["query", "when"]}], attempts)) is not None:
        tries += 1
    assert tries == len(RETRY_STRINGS)


ROUTES = [
    {"method": "GET", "path": "/items/{item_id}"},
    {"method": "GET", "path": "/items/latest"},
    {"method": "GET", "path": "/files/{rest:path}"},
    {"method": "POST", "path": "/items/{item_id:int}"},
]


def test_a_named_request_reaches_the_route_the_router_would_pick():
    probes = from_urls([["GET", "/items/latest"], ["GET", "/items/7?x=1"], ["GET", "/files/a/b"], ["post", "/items/3"]])
    assert [p.route for p in assign_routes(probes, ROUTES)] == [
        "GET /items/latest",  # a fixed segment wins over a parameter, whatever the order
        "GET /items/{item_id}",
        "GET /files/{rest}",
        "POST /items/{item_id}",
    ]
    (unknown,) = assign_routes(from_urls([["DELETE", "/items/1"]]), ROUTES)
    assert unknown.route is None


def test_named_requests_are_encoded_and_bad_ones_refused(tmp_path):
    (probe,) = from_urls([["GET", "/search?q=a b&city=Zürich"]])
    assert probe.target == "/search?q=a%20b&city=Z%C3%BCrich"
    path = tmp_path / "requests.json"
    path.write_text(json.dumps([{"method": "GET", "path": "/x", "headers": {"bad name": "v"}}]))
    try:
        from_file(path)
    except BadRequests as error:
        assert "cannot be sent" in str(error)
    else:
        raise AssertionError("a header name with a space was accepted")
