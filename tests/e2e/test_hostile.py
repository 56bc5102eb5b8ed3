"""Hostile input against a real ``fsml serve`` process: every answer is clear, none is a 5xx.

One table of inputs goes through both paths of ``/v1/predict`` (the fast path without a query
string, FastAPI with ``?include_values=false``) and must get the same status and body; raw sockets
check the size and time limits; schemathesis generates requests from the OpenAPI schema (valid
and invalid) while the server's memory is watched.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import AS_OF, BATCH_MAX, MAX_BODY, READ_TIMEOUT

pytestmark = pytest.mark.e2e

AT = AS_OF.isoformat()
JSON = {"content-type": "application/json"}
VALID = {"transaction_id": 7, "customer_id": 3, "merchant_id": 5, "amount": 42.5, "timestamp": AT}


def _raw(**changes: object) -> bytes:
    return json.dumps({**VALID, **changes}).encode()


def _swap(old: str, new: str) -> bytes:
    return json.dumps(VALID).replace(old, new).encode()


NESTED = b"[" * 5000 + b"]" * 5000
SINGLE_CASES: list[tuple[str, bytes, dict[str, str]]] = [
    ("valid", _raw(), JSON),
    ("json with charset", _raw(), {"content-type": "application/json; charset=utf-8"}),
    ("vendor json", _raw(), {"content-type": "application/vnd.fsml+json"}),
    ("upper-case type", _raw(), {"content-type": "APPLICATION/JSON"}),
    ("no content type", _raw(), {}),
    ("text/plain", _raw(), {"content-type": "text/plain"}),
    ("form", b"customer_id=3&merchant_id=5&amount=1", {"content-type": "application/x-www-form-urlencoded"}),
    ("byte-order mark", b"\xef\xbb\xbf" + _raw(), JSON),
    ("utf-16", json.dumps(VALID).encode("utf-16"), JSON),
    ("invalid utf-8", b'{"customer_id": 3, "merchant_id": 5, "amount": 1, "transaction_id": "\xff\xfe"}', JSON),
    ("empty body", b"", JSON),
    ("blank body", b"   \n", JSON),
    ("null", b"null", JSON),
    ("array", b"[]", JSON),
    ("string", b'"hello"', JSON),
    ("number", b"42", JSON),
    ("truncated", _raw()[:-5], JSON),
    ("trailing junk", _raw() + b"}}", JSON),
    ("nested junk", _raw(customer_id={"a": [1, [2, [3, {"b": None}]]]}), JSON),
    ("deep nesting", NESTED, JSON),
    ("id as string", _raw(customer_id="3"), JSON),
    ("id as float", _raw(customer_id=3.0), JSON),
    ("id as bool", _raw(customer_id=True), JSON),
    ("id null", _raw(customer_id=None), JSON),
    ("amount as string", _raw(amount="42.5"), JSON),
    ("amount as bool", _raw(amount=True), JSON),
    ("amount as list", _raw(amount=[1]), JSON),
    ("amount negative", _raw(amount=-1), JSON),
    ("amount integer", _raw(amount=42), JSON),
    ("id past int64", _raw(customer_id=2**63), JSON),
    ("id far past int64", _raw(customer_id=-(2**200)), JSON),
    ("transaction id past int64", _raw(transaction_id=2**64), JSON),
    ("transaction id huge string", _raw(transaction_id="t" * 100_000), JSON),
    ("float literal 1e999", _swap("42.5", "1e999"), JSON),
    ("NaN literal", _swap("42.5", "NaN"), JSON),
    ("Infinity literal", _swap("42.5", "Infinity"), JSON),
    ("-Infinity literal", _swap("42.5", "-Infinity"), JSON),
    ("integer 1e400 digits", _swap("42.5", "1" + "0" * 400), JSON),
    ("lone surrogate", _swap('"transaction_id": 7', '"transaction_id": "\\ud800"'), JSON),
    ("raw surrogate bytes", _swap('"transaction_id": 7', '"transaction_id": "\xed\xa0\x80"'), JSON),
    ("control character", _swap('"transaction_id": 7', '"transaction_id": "a\x01b"'), JSON),
    ("escaped nul", _swap('"transaction_id": 7', '"transaction_id": "a\\u0000b"'), JSON),
    ("duplicate keys, last valid", _swap('"customer_id": 3', '"customer_id": "x", "customer_id": 3'), JSON),
    ("duplicate keys, last invalid", _swap('"customer_id": 3', '"customer_id": 3, "customer_id": "x"'), JSON),
    ("extra field", _raw(unexpected=1), JSON),
    ("many extra fields", _raw(**{f"f{i}": i for i in range(500)}), JSON),
    ("missing fields", b'{"customer_id": 3}', JSON),
    ("year 1", _raw(timestamp="0001-01-01T00:00:00+01:00"), JSON),
    ("year 9999", _raw(timestamp="9999-12-31T23:59:59-05:00"), JSON),
    ("before 1970", _raw(timestamp="1969-12-31T23:59:59Z"), JSON),
    ("unix seconds", _raw(timestamp=1_790_000_000), JSON),
    ("unix huge", _raw(timestamp=10**20), JSON),
    ("date only", _raw(timestamp="2026-11-01"), JSON),
    ("naive time", _raw(timestamp="2026-11-01T00:00:00"), JSON),
    ("time as bool", _raw(timestamp=True), JSON),
    ("not a time", _raw(timestamp="yesterday"), JSON),
]
BATCH_CASES: list[tuple[str, bytes, dict[str, str]]] = [
    ("batch valid", json.dumps({"rows": [VALID, {**VALID, "customer_id": 99_999_999}]}).encode(), JSON),
    ("batch empty", b'{"rows": []}', JSON),
    ("batch too many", json.dumps({"rows": [VALID] * (BATCH_MAX + 1)}).encode(), JSON),
    ("batch not a list", b'{"rows": {"a": 1}}', JSON),
    ("batch bad rows", json.dumps({"rows": [{**VALID, "amount": "x"}] * 30}).encode(), JSON),
    ("batch year 1", json.dumps({"rows": [{**VALID, "timestamp": "0001-01-01T00:00:00+01:00"}]}).encode(), JSON),
    ("batch no content type", json.dumps({"rows": [VALID]}).encode(), {}),
    ("batch bom", b"\xef\xbb\xbf" + json.dumps({"rows": [VALID]}).encode(), JSON),
]


@pytest.fixture(scope="module")
def api(server) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _both(api: httpx.Client, path: str, body: bytes, headers: dict[str, str]) -> tuple[httpx.Response, httpx.Response]:
    return (
        api.post(path, content=body, headers=headers),
        api.post(path, params={"include_values": "false"}, content=body, headers=headers),
    )


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [pytest.param("/v1/predict", b, h, id=i) for i, b, h in SINGLE_CASES]
    + [pytest.param("/v1/predict/batch", b, h, id=i) for i, b, h in BATCH_CASES],
)
def test_both_paths_give_the_same_clear_answer(api: httpx.Client, path: str, body: bytes, headers: dict) -> None:
    fast, routed = _both(api, path, body, headers)
    assert fast.status_code < 500, fast.text
    assert (fast.status_code, fast.json()) == (routed.status_code, routed.json())
    assert len(fast.content) < 16_000  # errors quote a bounded excerpt of the input
    if fast.status_code == 422:
        for error in fast.json()["detail"]:
            assert error["loc"][0] == "body" and error["msg"]


def test_the_expected_answers(api: httpx.Client) -> None:
    """A few of the table's answers spelled out: what passes, and what names which field."""

    def answer(body: bytes, headers: dict[str, str] = JSON) -> tuple[int, set[str]]:
        reply = api.post("/v1/predict", content=body, headers=headers)
        fields = {str(p) for e in reply.json().get("detail", []) if isinstance(e, dict) for p in e.get("loc", [])}
        return reply.status_code, fields

    assert answer(_raw())[0] == 200
    assert answer(b"\xef\xbb\xbf" + _raw())[0] == 200  # a BOM is allowed (RFC 8259 says it may be)
    assert answer(_raw(), {"content-type": "text/plain"})[0] == 422
    assert answer(_raw(amount=42))[0] == 200
    for changes, field in [
        ({"customer_id": 2**63}, "customer_id"),
        ({"transaction_id": 2**64}, "transaction_id"),
        ({"timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
        ({"timestamp": "9999-12-31T23:59:59-05:00"}, "timestamp"),
        ({"amount": "42.5"}, "amount"),
        ({"unexpected": 1}, "unexpected"),
    ]:
        assert answer(_raw(**changes)) == (422, {"body", field})
    assert answer(_swap('"transaction_id": 7', '"transaction_id": "\\ud800"')) == (422, {"body", "transaction_id"})
    assert answer(_swap("42.5", "NaN")) == (422, {"body", "amount"})
    huge = api.post("/v1/predict", content=_raw(transaction_id="t" * (MAX_BODY - 500)), headers=JSON)
    assert huge.status_code == 422 and len(huge.content) < 2_000


def _request(port: int, head: bytes, body: bytes = b"", pause: float = 0.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        if pause:
            time.sleep(pause)
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _head(length: int | None = None, extra: bytes = b"", path: bytes = b"/v1/predict") -> bytes:
    size = b"" if length is None else b"content-length: %d\r\n" % length
    return b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n%s%s\r\n" % (path, size, extra)


def test_an_oversized_body_is_refused_before_it_is_read(server) -> None:
    start = time.monotonic()
    reply = _request(server.port, _head(100_000_000))  # says 100 MB, sends none of it
    assert reply.startswith(b"HTTP/1.1 413") and b"FSML_MAX_BODY_BYTES" in reply
    assert time.monotonic() - start < READ_TIMEOUT  # answered at once, then closed
    for path in (b"/v1/predict/batch", b"/admin/reload", b"/healthz"):  # in front of every route
        assert _request(server.port, _head(MAX_BODY + 1, path=path)).startswith(b"HTTP/1.1 413")


def test_a_chunked_body_is_cut_off_at_the_limit(server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_head(extra=b"transfer-encoding: chunked\r\n"))
        chunk = b"x" * 32768
        sent = 0
        try:
            while sent < 20 * MAX_BODY:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = _read_all(sock)
    assert reply.startswith(b"HTTP/1.1 413")
    assert sent < 20 * MAX_BODY  # the server stopped reading and closed


def test_slow_clients_are_timed_out(server) -> None:
    # headers that never end
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nhost: x\r\n")
        start = time.monotonic()
        try:
            for _ in range(40):
                sock.sendall(b"x")
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = _read_all(sock)
    assert reply.startswith(b"HTTP/1.1 408") and time.monotonic() - start < READ_TIMEOUT + 2
    # a connection that sends nothing at all
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        start = time.monotonic()
        assert _read_all(sock).startswith(b"HTTP/1.1 408") and time.monotonic() - start < READ_TIMEOUT + 2
    # a body that trickles in
    start = time.monotonic()
    reply = _request(server.port, _head(1000), b'{"customer_id": ')
    assert reply.startswith(b"HTTP/1.1 408") and b"body" in reply and time.monotonic() - start < READ_TIMEOUT + 2


def test_oversized_headers_are_refused(server) -> None:
    reply = _request(server.port, _head(2, extra=b"x-junk: " + b"a" * 100_000 + b"\r\n"), b"{}")
    assert reply.startswith(b"HTTP/1.1 400")


def test_any_api_key_header_gets_401(server) -> None:
    for value in (b"\xc3\xa9t\xc3\xa9", b"\xff\xfe\xfd", b"", b"\x80" * 300, "clé".encode("latin-1")):
        head = b"POST /admin/reload HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-api-key: %s\r\n" % value
        head += b"content-length: 0\r\n\r\n"
        reply = _request(server.port, head)
        assert reply.startswith(b"HTTP/1.1 401"), reply[:200]


def test_generated_requests_get_no_5xx_and_memory_stays_bounded(server, tmp_path_factory) -> None:
    """Property-based requests from the OpenAPI schema, valid and invalid, for every route."""
    import requests
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    pid = server._process.pid
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    strategy = schema.as_strategy(schemathesis.GenerationMode.POSITIVE) | schema.as_strategy(
        schemathesis.GenerationMode.NEGATIVE
    )
    tally = {"requests": 0, "5xx": 0, "statuses": {}}
    failures: list[str] = []
    rss = [_memory(pid)["VmRSS"]]
    session = requests.Session()
    deadline = time.monotonic() + 40  # bounded test time on a busy machine

    @settings(max_examples=1500, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case) -> None:
        if time.monotonic() > deadline:
            return
        response = case.call(base_url=server.url, session=session, timeout=30)
        tally["requests"] += 1
        tally["statuses"][response.status_code] = tally["statuses"].get(response.status_code, 0) + 1
        if response.status_code >= 500:
            tally["5xx"] += 1
            failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")
        if tally["requests"] % 50 == 0:
            rss.append(_memory(pid)["VmRSS"])

    run()
    memory = _memory(pid)
    rss.append(memory["VmRSS"])
    figures = {
        "requests": tally["requests"],
        "5xx": tally["5xx"],
        "statuses": tally["statuses"],
        "rss_start_mb": round(rss[0] / 1024, 1),
        "rss_end_mb": round(rss[-1] / 1024, 1),
        "rss_peak_mb": round(memory["VmHWM"] / 1024, 1),  # the process's high-water mark
    }
    out = Path(tmp_path_factory.getbasetemp()) / "hostile-suite.json"
    out.write_text(json.dumps(figures, indent=2))
    print(f"hostile suite: {json.dumps(figures)} (written to {out})")
    assert failures == []
    assert tally["requests"] >= 200
    assert rss[-1] - rss[0] < 100 * 1024  # kB: no growth with the input


def _memory(pid: int) -> dict[str, int]:
    """kB figures of /proc/<pid>/status (VmRSS now, VmHWM the peak)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields
