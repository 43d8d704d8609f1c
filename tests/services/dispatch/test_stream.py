"""GET /tasks/stream: server-sent events, scoped to the caller, with heartbeats, across replicas."""
from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import httpx

from tests.helpers import assert_problem, auth, eventually
from tests.services.dispatch.support import order, ready, receive, running, served, settings_for


class Listener:
    """Reads one SSE connection in the background into a list of (event, data) and comment lines."""

    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.events: list[tuple[str, dict]] = []
        self.ids: list[str] = []
        self.comments: list[str] = []
        self.status: int | None = None
        self.task = asyncio.create_task(self._read(client, headers))

    async def _read(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        async with client.stream("GET", "/api/v1/tasks/stream", headers=headers) as response:
            self.status = response.status_code
            assert response.headers["content-type"].startswith("text/event-stream")
            event = None
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("id: "):
                    self.ids.append(line[4:])
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event:
                    self.events.append((event, json.loads(line[6:])))

    def tasks(self) -> set[str]:
        return {data["task_id"] for _, data in self.events}

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def test_each_caller_streams_only_its_own_orders_even_when_another_replica_changes_them(
        database_url: str, nats_url: str, tmp_path: Path) -> None:
    async with running(settings_for(database_url, nats_url, tmp_path / "a")) as writer, \
            served(settings_for(database_url, nats_url, tmp_path / "b")) as (url, app):
        await eventually(lambda: ready(app.state.rt.state["feed"].ready.is_set()), what="feed subscribed")
        settings = writer.settings
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            listeners = {who: Listener(client, auth(settings, role, unit_id=unit))
                         for who, (role, unit) in {"yiqiao": ("station", "ps-yiqiao"),
                                                   "heshang": ("station", "ps-heshang"),
                                                   "rural": ("squadron", "sq-rural"),
                                                   "urban": ("squadron", "sq-urban"),
                                                   "command": ("command", None)}.items()}
            await eventually(lambda: ready(all(s.comments for s in listeners.values())), what="streams open")
            try:
                mine = await receive(writer, order("ps-yiqiao"))
                theirs = await receive(writer, order("ps-heshang"))
                accepted = await writer.client.post(f"/api/v1/tasks/{mine}/transitions", json={"action": "accept"},
                                                    headers=writer.station("ps-yiqiao"))
                assert accepted.status_code == 200

                async def yiqiao_saw_both_steps() -> bool:
                    return [d["new_status"] for _, d in listeners["yiqiao"].events] == ["dispatched", "accepted"]

                await eventually(yiqiao_saw_both_steps, what="ps-yiqiao's stream shows its order's two steps")
                await eventually(lambda: ready(len(listeners["command"].events) == 3), what="command sees all")
                await eventually(lambda: ready(listeners["rural"].tasks() == {mine, theirs}), what="zone")
                await eventually(lambda: ready(any(c == ": heartbeat" for c in listeners["urban"].comments)),
                                 what="a heartbeat on a quiet stream")
                assert listeners["yiqiao"].tasks() == {mine}
                assert listeners["heshang"].tasks() == {theirs}
                assert listeners["urban"].events == []
                assert all(e == "task.changed" for e, _ in listeners["command"].events)
            finally:
                for listener in listeners.values():
                    await listener.close()
            platform = await client.get("/api/v1/tasks/stream", headers=auth(settings, "platform"))
            assert_problem(platform, 403)


async def test_a_unit_whose_order_is_reassigned_away_gets_task_moved_with_nothing_more(
        database_url: str, nats_url: str, tmp_path: Path) -> None:
    async with running(settings_for(database_url, nats_url, tmp_path / "a")) as writer, \
            served(settings_for(database_url, nats_url, tmp_path / "b")) as (url, app):
        await eventually(lambda: ready(app.state.rt.state["feed"].ready.is_set()), what="feed subscribed")
        settings = writer.settings
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            listeners = {who: Listener(client, auth(settings, role, unit_id=unit))
                         for who, (role, unit) in {"yiqiao": ("station", "ps-yiqiao"),
                                                   "heshang": ("station", "ps-heshang"),
                                                   "chengxiang": ("station", "ps-chengxiang"),
                                                   "rural": ("squadron", "sq-rural"),
                                                   "urban": ("squadron", "sq-urban"),
                                                   "command": ("command", None)}.items()}
            await eventually(lambda: ready(all(s.comments for s in listeners.values())), what="streams open")
            try:
                within_zone = await receive(writer, order("ps-yiqiao"))
                across = await receive(writer, order("ps-yiqiao"))
                for task_id, unit in ((within_zone, "ps-heshang"), (across, "ps-chengxiang")):
                    moved = await writer.client.post(
                        f"/api/v1/tasks/{task_id}/transitions", headers=writer.as_("command"),
                        json={"action": "reassign", "unit_id": unit, "note": "secret reason"})
                    assert moved.status_code == 200, moved.text
                await eventually(lambda: ready(len(listeners["command"].events) == 4), what="command sees all four")
                await eventually(lambda: ready(len(listeners["yiqiao"].events) == 4), what="yiqiao: 2 orders, 2 moves")
                await eventually(lambda: ready(len(listeners["rural"].events) == 4), what="rural: 3 changes, 1 move")
                yiqiao = listeners["yiqiao"].events
                assert [(e, d["task_id"]) for e, d in yiqiao] == [
                    ("task.changed", within_zone), ("task.changed", across),
                    ("task.moved", within_zone), ("task.moved", across)]
                for _, data in yiqiao[2:]:
                    assert set(data) == {"task_id", "time"}  # not where it went, who moved it or why
                assert [(e, d["task_id"], d["unit_id"]) for e, d in listeners["heshang"].events] == [
                    ("task.changed", within_zone, "ps-heshang")]
                assert [(e, d["task_id"]) for e, d in listeners["chengxiang"].events] == [("task.changed", across)]
                # the squadron keeps the order moved inside its zone and loses the one moved out of it
                assert [(e, d["task_id"]) for e, d in listeners["rural"].events] == [
                    ("task.changed", within_zone), ("task.changed", across),
                    ("task.changed", within_zone), ("task.moved", across)]
                assert [(e, d["task_id"]) for e, d in listeners["urban"].events] == [("task.changed", across)]
                assert all(e == "task.changed" for e, _ in listeners["command"].events)
            finally:
                for listener in listeners.values():
                    await listener.close()


async def test_a_stream_resumed_with_last_event_id_gets_every_missed_event_once_then_the_live_ones(
        database_url: str, nats_url: str, tmp_path: Path) -> None:
    async with running(settings_for(database_url, nats_url, tmp_path / "a")) as writer, \
            served(settings_for(database_url, nats_url, tmp_path / "b", sse_resume_window=10)) as (url, app):
        await eventually(lambda: ready(app.state.rt.state["feed"].ready.is_set()), what="feed subscribed")
        command = auth(writer.settings, "command")
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            first = Listener(client, command)
            await eventually(lambda: ready(bool(first.comments)), what="stream open")
            seen = await receive(writer, order("ps-yiqiao"))
            await eventually(lambda: ready(first.tasks() == {seen}), what="the first order")
            await first.close()  # the connection drops
            missed = [await receive(writer, order("ps-yiqiao")) for _ in range(3)]
            last = first.ids[-1]
            assert last.isdigit()  # the stream sequence
            again = Listener(client, command | {"last-event-id": last})
            await eventually(lambda: ready(len(again.events) == 3), what="the missed orders")
            live = await receive(writer, order("ps-heshang"))
            await eventually(lambda: ready(len(again.events) == 4), what="then the live one")
            assert [d["task_id"] for _, d in again.events] == [*missed, live]  # in order, none twice, not `seen`
            assert [int(i) for i in again.ids] == sorted(int(i) for i in again.ids) and int(again.ids[0]) > int(last)
            await again.close()
            assert (await app.state.rt.bus.js.stream_info("DISPATCH")).state.last_seq > 10  # the units' events too
            too_old = Listener(client, command | {"last-event-id": "0"})  # further back than the window of 10
            try:
                await eventually(lambda: ready(bool(too_old.events)), what="the reset")
                assert [e for e, _ in too_old.events] == ["stream.reset"]  # reload the list, then listen on
            finally:
                await too_old.close()
