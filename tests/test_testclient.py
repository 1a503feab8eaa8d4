"""The TestClient: real sockets, with or without ``with``, restartable, several at
once, and the request/response API tests use."""

from __future__ import annotations

import gc
import socket
import threading

import pytest

from spikard import Cookie, Header, Response, Spikard
from spikard.testing import TestClient


def make_app(name: str) -> Spikard:
    app = Spikard()

    @app.get("/whoami")
    def whoami() -> dict[str, str]:
        return {"app": name}

    @app.get("/echo")
    async def echo(
        tags: list[str] | None = None,
        n: int = 0,
        x_token: str | None = Header(None),
        session: str | None = Cookie(None),
        theme: str | None = Cookie(None),
    ) -> dict[str, object]:
        return {"tags": tags, "n": n, "x_token": x_token, "session": session, "theme": theme}

    @app.post("/echo-body")
    def echo_body(payload: dict) -> dict[str, object]:
        return {"received": payload}

    @app.get("/text")
    def text() -> Response:
        return Response("héllo", headers={"X-Thing": "1"})

    return app


def port_accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def port_of(client: TestClient) -> int:
    return int(client.base_url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def client():
    with TestClient(make_app("main")) as client:
        yield client


def test_with_statement_serves_and_stops_listening_on_exit():
    with TestClient(make_app("a")) as client:
        assert client.get("/whoami").json() == {"app": "a"}
        port = port_of(client)
        assert port_accepts(port)
    assert not port_accepts(port)


def test_without_with_it_starts_on_the_first_request_and_stops_on_close():
    client = TestClient(make_app("b"))
    try:
        assert client.get("/whoami").json() == {"app": "b"}
        port = port_of(client)
    finally:
        client.close()
    assert not port_accepts(port)


def test_a_client_that_is_garbage_collected_stops_serving():
    client = TestClient(make_app("gc"))
    assert client.get("/whoami").status_code == 200
    port = port_of(client)
    del client
    gc.collect()
    assert not port_accepts(port)


def test_a_closed_client_starts_again_on_the_next_request():
    client = TestClient(make_app("c"))
    try:
        assert client.get("/whoami").status_code == 200
        client.close()
        assert client.get("/whoami").json() == {"app": "c"}
    finally:
        client.close()


def test_many_start_stop_cycles_in_one_process():
    app = make_app("cycle")
    for _ in range(5):
        with TestClient(app) as client:
            assert client.get("/whoami").json() == {"app": "cycle"}
    for index in range(5):
        with TestClient(make_app(f"fresh-{index}")) as client:
            assert client.get("/whoami").json() == {"app": f"fresh-{index}"}


def test_start_stop_cycles_from_other_threads():
    results: list[object] = []

    def run() -> None:
        with TestClient(make_app("threaded")) as client:
            results.append(client.get("/whoami").json())

    for _ in range(3):
        thread = threading.Thread(target=run)
        thread.start()
        thread.join(timeout=30)
    assert results == [{"app": "threaded"}] * 3


def test_two_clients_of_different_apps_at_once():
    with TestClient(make_app("one")) as first, TestClient(make_app("two")) as second:
        assert port_of(first) != port_of(second)
        for _ in range(3):
            assert first.get("/whoami").json() == {"app": "one"}
            assert second.get("/whoami").json() == {"app": "two"}


def test_response_headers_are_case_insensitive(client):
    response = client.get("/text")
    assert response.headers["content-type"] == response.headers["Content-Type"] == response.headers["CONTENT-TYPE"]
    assert response.headers["x-thing"] == "1"
    assert "X-THING" in response.headers
    assert response.headers.get_list("X-Thing") == ["1"]
    assert response.headers.get_list("x-missing") == []
    assert "x-missing" not in response.headers
    with pytest.raises(KeyError):
        response.headers["x-missing"]


def test_response_content_text_and_json(client):
    response = client.get("/text")
    assert response.content == "héllo".encode()
    assert response.text == "héllo"
    json_response = client.get("/whoami")
    assert json_response.json() == {"app": "main"}
    assert json_response.text == '{"app":"main"}'
    assert json_response.content == b'{"app":"main"}'


def test_params_argument_as_mapping_and_as_pairs(client):
    assert client.get("/echo", params={"n": 3}).json()["n"] == 3
    assert client.get("/echo", params={"tags": ["a", "b"]}).json()["tags"] == ["a", "b"]
    assert client.get("/echo", params=[("tags", "x"), ("tags", "y"), ("n", "2")]).json()["tags"] == ["x", "y"]
    assert client.get("/echo?n=1", params={"tags": "t"}).json() == {
        "tags": ["t"],
        "n": 1,
        "x_token": None,
        "session": None,
        "theme": None,
    }


def test_params_are_url_encoded(client):
    assert client.get("/echo", params={"tags": "a b&c=d"}).json()["tags"] == ["a b&c=d"]


def test_headers_and_cookies_arguments(client):
    body = client.get("/echo", headers={"X-Token": "tok"}, cookies={"session": "s1", "theme": "dark"}).json()
    assert body["x_token"] == "tok"
    assert body["session"] == "s1"
    assert body["theme"] == "dark"


def test_json_argument_sends_a_json_body(client):
    response = client.post("/echo-body", json={"a": [1, 2], "b": None})
    assert response.status_code == 200, response.text
    assert response.json() == {"received": {"a": [1, 2], "b": None}}


def test_content_argument_sends_raw_bytes_and_str(client):
    headers = {"Content-Type": "application/json"}
    assert client.post("/echo-body", content=b'{"k": 1}', headers=headers).json() == {"received": {"k": 1}}
    assert client.post("/echo-body", content='{"k": "ü"}', headers=headers).json() == {"received": {"k": "ü"}}


def test_absolute_urls_are_sent_to_the_served_app(client):
    assert client.get("http://testserver/whoami").json() == {"app": "main"}
    assert client.get("http://testserver/echo?n=4").json()["n"] == 4


def test_status_helpers(client):
    assert client.get("/whoami").is_success
    missing = client.get("/missing")
    assert missing.status_code == 404
    assert not missing.is_success
    with pytest.raises(AssertionError):
        missing.raise_for_status()


def test_concurrent_requests_through_one_client(client):
    results: list[object] = []
    lock = threading.Lock()

    def one() -> None:
        value = client.get("/whoami").json()
        with lock:
            results.append(value)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [{"app": "main"}] * 20
