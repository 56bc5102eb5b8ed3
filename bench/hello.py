"""The smallest ASGI app uvicorn can serve, run the way ``fsml serve`` runs (uvloop, httptools,
two workers): the machine's own latency floor for HTTP at a fixed rate, measured in the same run.

    python -m bench.hello PORT
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

BODY = b'{"score": 0.5}'


async def app(scope: dict[str, Any], receive: Callable, send: Callable) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        "bench.hello:app", host="127.0.0.1", port=int(sys.argv[1]), workers=2, loop="uvloop", http="httptools",
        access_log=False, log_level="warning", server_header=False, date_header=False,
    )  # fmt: skip
