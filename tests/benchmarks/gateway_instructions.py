"""Instructions a gateway worker spends per WebSocket order, counted by callgrind (the
count the machine's load does not move): the benchmark's engine (`bench_gateway`,
fsync none), one uvicorn worker of the gateway started under
`valgrind --tool=callgrind`, and one client on `/api/v1/ws/orders` sending `n` of the
benchmark's orders (an IOC buy that cannot fill) in frames of 250, 4 frames in flight;
then the gateway is stopped cleanly, which writes callgrind's totals.

    .venv/bin/python -m tests.benchmarks.gateway_instructions OUT N
    # callgrind's `totals` in OUT; instructions per order: (totals of N - totals of M)
    # / (N - M) for two runs, start-up and imports cancelling out (e.g. 30000, 10000)

One worker serves the client and applies the whole event stream (its projection), as
each of the benchmark's workers does. A run of 30,000 orders takes ~1-3 minutes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.benchmarks import bench_gateway as bench

BATCH = 250
IN_FLIGHT = 4


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 900  # imports under valgrind take a while
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise bench.BenchError(f"{url} not ready:\n{log.read_text()[-3000:]}") from None
            time.sleep(1)


async def _orders(port: int, key: tuple[str, str], n: int) -> None:
    """`n` orders (rounded down to whole frames) acked, then a moment for the updates."""
    import websockets

    frame = json.dumps([{"action": "submit", "ref": i, **bench.ORDER} for i in range(BATCH)])
    headers = {"APCA-API-KEY-ID": key[0], "APCA-API-SECRET-KEY": key[1]}
    url = f"ws://127.0.0.1:{port}/api/v1/ws/orders"
    async with websockets.connect(
        url, additional_headers=headers, max_size=2**24, compression=None
    ) as ws:
        await ws.recv()  # authenticated
        frames, sent, done = n // BATCH, 0, 0
        while sent < min(IN_FLIGHT, frames):
            await ws.send(frame)
            sent += 1
        while done < frames:
            for m in json.loads(await ws.recv()):
                if m["type"] == "error":
                    raise bench.BenchError(f"refused: {m}")
                if m["type"] == "ack" and m["ref"] == BATCH - 1:
                    done += 1
                    if sent < frames:
                        await ws.send(frame)
                        sent += 1
        await asyncio.sleep(2)  # the last order updates, still being written


def main(out: str, n: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="tickplane-gateway-instructions-"))
    procs = bench.Processes(root, 1)
    try:
        cfg = {
            "name": "gateway-instructions",
            "order_entry": procs.order_entry,
            "events": procs.events,
            "http_port": procs.engine_http,
            "journal_dir": str(root / "journal"),
            "symbols": [{"name": bench.SYMBOL}],
            "pin_cpu": False,
            "fsync": "none",
        }
        (root / "engine.json").write_text(json.dumps(cfg))
        argv = [sys.executable, "-m", "tickplane.cli.main", "engine", "--config", "engine.json"]
        engine = procs._spawn("engine", argv, {})
        bench._wait_http(
            f"http://127.0.0.1:{procs.engine_http}/readyz", engine, root / "engine.log"
        )
        key = bench._make_keys(root, ["instructions-ws"])[0]
        env = {
            "TICKPLANE_GATEWAY_ENGINE_ORDER_ENTRY": procs.order_entry,
            "TICKPLANE_GATEWAY_ENGINE_EVENTS": procs.events,
            "TICKPLANE_GATEWAY_DATA_DIR": str(root),
            "TICKPLANE_GATEWAY_RATE_LIMIT_PER_SECOND": "0",
            "TICKPLANE_GATEWAY_METRICS_PORT": "0",
            "TICKPLANE_GATEWAY_WS_QUEUE_SIZE": "100000",
            "TICKPLANE_GATEWAY_ENGINE_TIMEOUT": "60",  # valgrind's slowdown
        }
        gateway = procs._spawn(
            "gateway",
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={Path(out).resolve()}",
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "--no-access-log",
                "--log-level",
                "warning",
                "--workers",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                str(procs.gateway_port),
                "tickplane.api.main:create_app",
            ],
            env,
        )
        ready = f"http://127.0.0.1:{procs.gateway_port}/api/v1/ready"
        _wait_ready(ready, gateway, root / "gateway.log")
        asyncio.run(_orders(procs.gateway_port, key, n))
        gateway.terminate()
        gateway.wait(300)
    finally:
        procs.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
