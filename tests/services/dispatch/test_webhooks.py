"""Webhooks end to end in dispatch: registration with the SSRF guard, signed CloudEvents to the platform whose
incident it is, retries with back-off, the delivery log, and nothing for another platform."""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select

from deploy.natsd import free_port
from services.dispatch.webhook_delivery import prune_deliveries_once
from services.dispatch.webhook_models import WebhookDelivery
from services.dispatch.webhooks import subscription
from shared.db import utcnow
from shared.events import TaskOverdueV2
from shared.webhooks import CONTENT_TYPE, verify
from tests.helpers import assert_problem, auth, envelope_of, eventually
from tests.services.dispatch.support import Svc, incident, order, receive, running, settings_for


@dataclass
class Receiver:
    """A local webhook receiver: records what it gets; `/flaky` fails twice, `/moved` redirects."""

    base: str = ""
    got: dict[str, list[tuple[dict[str, str], bytes]]] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        calls = self.got.setdefault(name, [])
        calls.append((dict(request.headers), await request.read()))
        if name == "flaky" and len(calls) <= 2:
            return web.Response(status=503, text="busy")
        if name == "moved":
            return web.Response(status=302, headers={"Location": f"{self.base}/hook/elsewhere"})
        return web.Response(status=204)


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook/{name}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    receiver.base = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


@pytest.fixture
async def hooked(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Svc]:
    """A dispatch replica whose webhooks may reach 127.0.0.1, retrying fast."""
    settings = settings_for(database_url, nats_url, tmp_path, environment="test", webhook_allow=["127.0.0.1/32"],
                            webhook_backoff_s=[0.05, 0.05, 0.05], webhook_poll_s=0.05, webhook_timeout_s=3)
    async with running(settings) as svc:
        yield svc


def _platform(svc: Svc, name: str) -> dict[str, str]:
    return auth(svc.settings, "platform", username=name)


async def _register(svc: Svc, who: str, url: str, events: list[str]) -> dict:
    answer = await svc.client.post("/api/v1/webhooks", json={"url": url, "events": events},
                                   headers=_platform(svc, who))
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_signed_cloud_event_for_the_platforms_own_incident_with_retries(hooked: Svc) -> None:
    svc = hooked
    async with receiving() as receiver:
        good = await _register(svc, "platform-a", f"{receiver.base}/hook/good", ["task_order.dispatched"])
        flaky = await _register(svc, "platform-a", f"{receiver.base}/hook/flaky", ["task_order.dispatched"])
        moved = await _register(svc, "platform-a", f"{receiver.base}/hook/moved", ["task_order.dispatched"])
        other = await _register(svc, "platform-b", f"{receiver.base}/hook/other",
                                ["task_order.dispatched", "task_order.completed", "task_order.verified",
                                 "task_order.overdue"])
        reported = await svc.client.post("/api/v1/incidents", json=incident("wh-1"),
                                         headers=_platform(svc, "platform-a"))
        assert reported.status_code in (200, 201), reported.text
        incident_id = reported.json()["id"]
        task_id = await receive(svc, order("ps-yiqiao").model_copy(update={"incident_id": incident_id}))

        async def all_heard() -> bool:
            return len(receiver.got.get("good", [])) == 1 and len(receiver.got.get("flaky", [])) == 3 \
                and len(receiver.got.get("moved", [])) == 4

        await eventually(all_heard, what="the good, flaky and redirecting receivers to be called", timeout=20)

        headers, body = receiver.got["good"][0]
        assert headers["Content-Type"] == CONTENT_TYPE
        assert verify(good["secret"], headers, body)
        assert not verify(flaky["secret"], headers, body), "another subscription's secret must not verify"
        assert not verify(good["secret"], headers, body.replace(b"ps-yiqiao", b"ps-xxxxxx"))
        event = json.loads(body)
        assert event["specversion"] == "1.0" and event["type"] == "jiaozhi.task_order.dispatched.v1"
        assert event["subject"] == task_id and headers["webhook-id"] == event["id"]
        assert event["data"]["incident_id"] == incident_id and event["data"]["event"] == "task_order.dispatched"
        assert event["data"]["external_id"] == "wh-1" and event["data"]["status"] == "dispatched"
        third_headers, third_body = receiver.got["flaky"][2]
        assert verify(flaky["secret"], third_headers, third_body) and json.loads(third_body)["id"] == event["id"]

        log = await svc.client.get(f"/api/v1/webhooks/{flaky['id']}/deliveries", headers=_platform(svc, "platform-a"))
        [delivery] = log.json()["items"]
        assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)
        assert [a["status_code"] for a in delivery["log"]] == [503, 503, 204]
        moved_log = await svc.client.get(f"/api/v1/webhooks/{moved['id']}/deliveries",
                                         headers=_platform(svc, "platform-a"))
        [gave_up] = moved_log.json()["items"]
        assert gave_up["status"] == "failed" and "redirects are not followed" in gave_up["last_error"]
        assert "elsewhere" not in receiver.got  # the redirect was never followed

        # platform B hears nothing of A's incident: no delivery was even staged for it
        others = await svc.client.get(f"/api/v1/webhooks/{other['id']}/deliveries",
                                      headers=_platform(svc, "platform-b"))
        assert others.status_code == 200 and others.json()["items"] == []
        assert "other" not in receiver.got
        # nor may it read A's subscription or its log
        peek = await svc.client.get(f"/api/v1/webhooks/{good['id']}/deliveries", headers=_platform(svc, "platform-b"))
        assert_problem(peek, 404)


@pytest.mark.parametrize("url", ["http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
                                 "http://[::1]:8080/hook", "http://192.168.0.10/x"])
async def test_private_targets_are_refused_at_registration(svc: Svc, url: str) -> None:
    answer = await svc.client.post("/api/v1/webhooks", json={"url": url, "events": ["task_order.verified"]},
                                   headers=auth(svc.settings, "platform", username="platform-a"))
    assert "not allow-listed" in assert_problem(answer, 422)["detail"]


async def test_only_platforms_register_and_lists_are_their_own(svc: Svc) -> None:
    body = {"url": "http://10.1.2.3/hook", "events": ["task_order.verified"]}
    assert_problem(await svc.client.post("/api/v1/webhooks", json=body, headers=svc.as_("command")), 403)
    assert_problem(await svc.client.get("/api/v1/webhooks", headers=svc.as_("station", "ps-yiqiao")), 403)
    bad = await svc.client.post("/api/v1/webhooks", json=body | {"events": ["task_order.lost"]},
                                headers=auth(svc.settings, "platform", username="platform-a"))
    assert_problem(bad, 422)
    listed = await svc.client.get("/api/v1/webhooks", headers=auth(svc.settings, "platform", username="p-none"))
    assert listed.status_code == 200 and listed.json() == {"items": [], "next_cursor": None}


async def test_the_delivery_log_is_pruned_but_pending_deliveries_stay(svc: Svc) -> None:
    old = utcnow() - dt.timedelta(days=31)
    async with svc.rt.transaction() as session:
        for status in ("delivered", "failed", "pending"):
            session.add(WebhookDelivery(id=f"d-{status}", subscription_id="s", event_id=f"e-{status}",
                                        event_type="task_order.verified", task_id="t", body="{}", status=status,
                                        created_at=old))
    pruned = await prune_deliveries_once(svc.rt, svc.settings)  # type: ignore[arg-type]
    assert pruned == {"webhook_delivery": 2}
    async with svc.rt.sessions() as session:
        assert [d.id for d in (await session.execute(select(WebhookDelivery))).scalars()] == ["d-pending"]


async def test_an_overdue_order_of_the_platforms_incident_is_staged_for_its_receiver(hooked: Svc) -> None:
    """v2 overdue events (milestone codes), handled by the webhook consumer as it would from the stream."""
    svc = hooked
    sub = await _register(svc, "platform-a", "http://127.0.0.1:9/hook", ["task_order.overdue"])
    reported = await svc.client.post("/api/v1/incidents", json=incident("wh-overdue"),
                                     headers=_platform(svc, "platform-a"))
    task_id = await receive(svc, order("ps-yiqiao").model_copy(update={"incident_id": reported.json()["id"]}))
    fact = TaskOverdueV2(task_id=task_id, model_id="X01", category="personal_education", station_id="ps-yiqiao",
                         unit_id="ps-yiqiao", milestone="visit", deadline_at=utcnow(), at=utcnow())
    handler = subscription(svc.rt).handlers[TaskOverdueV2]
    async with svc.rt.transaction() as session:
        await handler(session, fact, envelope_of(fact))
    async with svc.rt.sessions() as session:
        [row] = (await session.execute(select(WebhookDelivery).where(
            WebhookDelivery.subscription_id == sub["id"]))).scalars()
    event = json.loads(row.body)
    assert row.event_type == "task_order.overdue" and event["type"] == "jiaozhi.task_order.overdue.v1"
    assert event["data"]["milestone"] == "visit" and event["data"]["external_id"] == "wh-overdue"
