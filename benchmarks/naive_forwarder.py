"""Baseline for the ingest benchmark: forward every child `$/progress` to the editor as is.

`python -m benchmarks.naive_forwarder PROJECT ...` starts one `python -m finecode_er` per
project (exactly as the WM does), initializes them, then per line `run ACTION N` on stdin sends
`run` (with a token) to every runner at once and forwards each child message to stdout as an LSP
`$/progress` on one editor token: `json.loads` + `json.dumps` + a buffered write, nothing else.
When every runner has answered it prints `{"cpu": s, "wall": s, "forwarded": n}` on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from finecode_er.wire import encode, read_message


class Child:
    def __init__(self, root: str, proc: asyncio.subprocess.Process) -> None:
        self.root = root
        self.proc = proc
        self.answers: dict[int, asyncio.Future[Any]] = {}

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(encode(message))

    async def request(self, msg_id: int, method: str, params: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.answers[msg_id] = future
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return await future


class Forwarder:
    def __init__(self) -> None:
        self.out = sys.stdout.buffer
        self.forwarded = 0

    async def pump(self, child: Child) -> None:
        assert child.proc.stdout is not None
        out = self.out
        while (body := await read_message(child.proc.stdout)) is not None:
            message = json.loads(body)
            if message.get("method") == "$/progress":
                out.write(encode({"jsonrpc": "2.0", "method": "$/progress",
                                  "params": {"token": "editor",
                                             "value": message["params"]["value"]}}))
                self.forwarded += 1
            elif "id" in message:
                future = child.answers.pop(message["id"], None)
                if future is not None:
                    future.set_result(message)


async def main(roots: list[str]) -> None:
    loop = asyncio.get_running_loop()
    forwarder = Forwarder()
    children = []
    for root in roots:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "finecode_er", cwd=root, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, limit=2**24)
        children.append(Child(root, proc))
    pumps = [loop.create_task(forwarder.pump(c)) for c in children]
    await asyncio.gather(*(c.request(0, "initialize", {"projectRoot": c.root})
                           for c in children))
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    msg_id = 0
    while line := (await stdin.readline()).decode().split():
        action, n = line[1], int(line[2])
        msg_id += 1
        forwarder.forwarded = 0
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(c.request(msg_id, "run", {
            "action": action, "params": {"n": n}, "workDoneToken": f"t{msg_id}"})
            for c in children))
        forwarder.out.flush()
        report = {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
                  "forwarded": forwarder.forwarded}
        print(json.dumps(report), file=sys.stderr, flush=True)
    for child in children:
        assert child.proc.stdin is not None
        child.proc.stdin.close()
    for child in children:
        await child.proc.wait()
    for pump in pumps:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
