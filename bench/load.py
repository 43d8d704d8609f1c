"""Load generators: open-loop incidents at a steady rate, closed-loop HTTP, raw NATS."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import statistics
import time
import uuid

import aiohttp
import nats
from nats.js.api import StreamConfig


def pct(values: list[float], p: float) -> float | None:
    """The p-th percentile (nearest rank), in the values' unit."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summary_ms(values: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/max of seconds, in milliseconds."""
    ms = [v * 1000 for v in values]
    return {"p50_ms": pct(ms, 50), "p90_ms": pct(ms, 90), "p99_ms": pct(ms, 99), "max_ms": max(ms) if ms else None,
            "mean_ms": statistics.fmean(ms) if ms else None}


def just_now() -> str:
    """When a benchmark's incident happened: minutes ago, never a fixed date (a fixed one ages past the 30-day
    back-fill horizon and tracing then issues no order: the benchmark would measure nothing)."""
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()


def incident(i: int, run: str) -> dict:
    """A drunk-driving accident somewhere in the demo district (always fires P01)."""
    return {
        "external_id": f"bench-{run}-{i}", "occurred_at": just_now(),
        "location": {"lat": 30.06 + (i % 19) * 0.01, "lon": 120.21 + (i % 29) * 0.01},
        "severity": {"deaths": 0, "injuries": 1},
        "parties": [{"role": "driver", "person": {"id_number": f"33010919900101{i:04d}", "drunk": True}}],
    }


async def token(http: aiohttp.ClientSession, gateway: str, user: str) -> str:
    async with http.post(gateway + "/api/v1/auth/token",
                         data={"grant_type": "password", "username": user, "password": "demo"}) as r:
        r.raise_for_status()
        return (await r.json())["access_token"]


async def incidents_to_tasks(gateway: str, nats_url: str, *, rate: float, seconds: float) -> dict:
    """Post incidents at a steady rate (open loop); time until each one's task order is created.

    "Created" is when dispatch's `dispatch.task.changed.v1` (new task) event is seen on the bus:
    dispatch publishes it from its outbox only after the task row committed, so by then the task
    is visible through the API.
    """
    run = uuid.uuid4().hex[:8]
    seen: dict[str, float] = {}
    nc = await nats.connect(nats_url)

    async def on_task(msg) -> None:  # noqa: ANN001
        data = json.loads(msg.data)["data"]
        if data.get("old_status") is None and data.get("incident_id"):
            seen.setdefault(data["incident_id"], time.perf_counter())

    await nc.subscribe("dispatch.task.changed.v1", cb=on_task)
    sent: dict[str, float] = {}
    post_latency: list[float] = []
    errors: list[str] = []
    count = int(rate * seconds)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
        headers = {"authorization": "Bearer " + await token(http, gateway, "platform")}

        async def post(i: int) -> None:
            started = time.perf_counter()
            try:
                async with http.post(gateway + "/api/v1/incidents", json=incident(i, run), headers=headers) as r:
                    body = await r.json()
                    if r.status != 201:
                        errors.append(f"{r.status}: {str(body)[:120]}")
                        return
            except aiohttp.ClientError as exc:
                errors.append(type(exc).__name__)
                return
            post_latency.append(time.perf_counter() - started)
            sent[body["id"]] = started

        begin = time.perf_counter()
        tasks = []
        for i in range(count):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(i)))
        await asyncio.gather(*tasks)
        offered_s = time.perf_counter() - begin
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and not set(sent) <= set(seen):
            await asyncio.sleep(0.05)
    await nc.close()
    latencies = [seen[i] - t for i, t in sent.items() if i in seen]
    return {"rate_offered_per_s": rate, "incidents": count, "accepted": len(sent), "errors": len(errors),
            "error_samples": errors[:5], "achieved_rate_per_s": round(len(sent) / offered_s, 1),
            "tasks_seen": len(latencies), "lost": len(set(sent) - set(seen)),
            "incident_to_task": summary_ms(latencies), "post_response": summary_ms(post_latency)}


async def closed_loop(url: str, *, connections: int, seconds: float, headers: dict[str, str]) -> dict:
    """`connections` clients each sending the next request when the last returned."""
    latencies: list[float] = []
    failures = 0
    stop_at = time.perf_counter() + seconds

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal failures
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            async with http.get(url, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    failures += 1
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
        for _ in range(20):  # warm the pools
            async with http.get(url, headers=headers) as r:
                await r.read()
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(connections)))
        elapsed = time.perf_counter() - began
    return {"connections": connections, "requests": len(latencies), "failures": failures,
            "throughput_per_s": round(len(latencies) / elapsed, 1), **summary_ms(latencies)}


async def raw_nats(nats_url: str, *, messages: int = 5000) -> dict:
    """JetStream publish one at a time, publish_async, and pull fetch(100)+ack, on a scratch stream."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    name = "BENCH" + uuid.uuid4().hex[:6].upper()
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
    payload = b"x" * 400
    began = time.perf_counter()
    for i in range(messages):
        await js.publish(f"{name}.one", payload, headers={"Nats-Msg-Id": f"one-{i}"})
    one_by_one = messages / (time.perf_counter() - began)
    began = time.perf_counter()
    futures = [await js.publish_async(f"{name}.batch", payload, headers={"Nats-Msg-Id": f"b-{i}"})
               for i in range(messages)]
    await asyncio.gather(*futures)
    batched = messages / (time.perf_counter() - began)
    psub = await js.pull_subscribe(f"{name}.>", durable="bench")
    got = 0
    began = time.perf_counter()
    while got < 2 * messages:
        for msg in await psub.fetch(100, timeout=5):
            await msg.ack()
            got += 1
    consumed = got / (time.perf_counter() - began)
    latencies = []
    lat_sub = await js.pull_subscribe(f"{name}.lat", durable="lat")
    for _ in range(300):
        started = time.perf_counter()
        await js.publish(f"{name}.lat", payload)
        msg = (await lat_sub.fetch(1, timeout=5))[0]
        await msg.ack()
        latencies.append(time.perf_counter() - started)
    await js.delete_stream(name)
    await nc.close()
    return {"publish_one_by_one_per_s": round(one_by_one), "publish_async_per_s": round(batched),
            "fetch100_ack_per_s": round(consumed), "publish_to_consume": summary_ms(latencies)}
