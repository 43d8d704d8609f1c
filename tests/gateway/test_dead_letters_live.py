"""Dead letters through the running system: a bad event on a consumed subject is parked by every service that
consumes it (identity numbers masked), counted in its /metrics, listed by admins through the gateway's one path,
and a replay that fails again leaves it parked."""
from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import nats
import pytest

from shared.db import utcnow
from shared.events import Envelope, UnitUpserted
from tests.gateway.conftest import Live
from tests.helpers import assert_problem

pytestmark = [pytest.mark.system, pytest.mark.xdist_group("live")]

RAW_ID = "330109199001011234"


async def test_a_bad_event_is_parked_masked_counted_and_listed_for_admins_through_the_gateway(live: Live) -> None:
    system = live.system
    nc = await nats.connect(f"nats://127.0.0.1:{system.nats_port}", user="dispatch",
                            password=system.nats_users.passwords["dispatch"], inbox_prefix="_INBOX_dispatch")
    marker = f"unit-{uuid.uuid4().hex[:8]}"
    bad = Envelope(source="jiaozhi/dispatch", type=UnitUpserted.subject, subject=f"{marker} {RAW_ID}",
                   time=utcnow(), data={"unit_id": marker, "id_number": RAW_ID})  # no name, kind: off contract
    await nc.jetstream().publish(UnitUpserted.subject, bad.model_dump_json().encode(),
                                 headers={"Nats-Msg-Id": bad.id})
    await nc.close()
    admin = live.headers["admin"]
    async with httpx.AsyncClient(base_url=live.gateway, timeout=30) as http:
        deadline = time.monotonic() + 30
        while True:
            page = (await http.get("/api/v1/admin/dead-letters", params={"limit": 50}, headers=admin)).json()
            mine = [d for d in page["items"] if d["event_id"] == bad.id]
            if len(mine) >= 3 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert page["unavailable"] == []
        assert {d["service"] for d in mine} == {"tracing", "assessment", "classification"}, page  # all consume it
        for letter in mine:
            assert RAW_ID not in str(letter) and "330*************34" in letter["body"]
            assert letter["subject"] == UnitUpserted.subject and "contract" in letter["error"]
        tracing = next(d for d in mine if d["service"] == "tracing")
        metrics = (await http.get(system.url("tracing") + "/metrics")).text
        assert f'dead_letters_total{{consumer="tracing-on-dispatch",subject="{UnitUpserted.subject}"}}' in metrics
        replay = await http.post(f"/api/v1/admin/dead-letters/tracing/{tracing['id']}/replay", headers=admin)
        assert_problem(replay, 409)  # still off contract: it stays parked
        assert_problem(await http.get("/api/v1/admin/dead-letters", headers=live.headers["command"]), 403)
        assert_problem(await http.get("/api/v1/admin/dead-letters", params={"service": "nope"}, headers=admin), 422)
