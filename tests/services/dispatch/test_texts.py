"""A task order's texts: codes with both languages (v2), English-only orders (v1 events, rows from before codes)
read in Chinese from the shipped catalogue, milestones completed by code; problems in the reader's language."""
from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path

from alembic import command
from sqlalchemy import JSON, MetaData, column, select, table

from shared.db import ensure_schema, make_engine, utcnow
from shared.events import CodedMilestone, TaskOrderGeneratedV2
from shared.migrations import alembic_config, upgrade
from shared.texts import TextLine
from tests.services.dispatch.support import Svc, order, receive, set_modes

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "dispatch" / "migrations"
CJK = re.compile(r"[\u4e00-\u9fff]")
ZH, EN = {"accept-language": "zh-CN"}, {"accept-language": "en"}
WHEN = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def p01_v2(station_id: str = "ps-yiqiao") -> TaskOrderGeneratedV2:
    now = utcnow()
    return TaskOrderGeneratedV2(
        task_id=f"task-{uuid.uuid4().hex}", incident_id="inc-1", model_id="P01", model_version=3, source="person",
        entity_ref="person:abc", category="personal_penalty", station_id=station_id,
        deadline_at=now + dt.timedelta(days=14), model_name={"zh-CN": "酒驾毒驾", "en": "drunk or drugged driving"},
        key_points=[TextLine(code="k1", text={"zh-CN": "核实检测结果", "en": "confirm the test result"})],
        measures=[TextLine(code="m1", text={"zh-CN": "依法处罚", "en": "penalty per law"})],
        milestones=[CodedMilestone(code="case_opened", text={"zh-CN": "立案", "en": "case opened"},
                                   due_at=now + dt.timedelta(days=1)),
                    CodedMilestone(code="penalty_decided", text={"zh-CN": "作出处罚决定", "en": "penalty decided"},
                                   due_at=now + dt.timedelta(days=7))])


async def read(svc: Svc, task_id: str, lang: dict[str, str]) -> dict:
    response = await svc.client.get(f"/api/v1/tasks/{task_id}", headers=svc.station("ps-yiqiao") | lang)
    assert response.status_code == 200, response.text
    return response.json()


async def step(svc: Svc, task_id: str, lang: dict[str, str], action: str, **body: object):  # noqa: ANN201
    return await svc.client.post(f"/api/v1/tasks/{task_id}/transitions", json={"action": action} | body,
                                 headers=svc.station("ps-yiqiao") | lang)


async def test_a_v2_order_reads_in_either_language_and_completes_by_code(svc: Svc) -> None:
    await set_modes(svc, {"ps-yiqiao": "deep"})
    task_id = await receive(svc, p01_v2())
    zh, en = await read(svc, task_id, ZH), await read(svc, task_id, EN)
    listed = (await svc.client.get("/api/v1/tasks", params={"lang": "zh-CN"},
                                   headers=svc.station("ps-yiqiao") | EN)).json()["items"]

    assert (zh["lang"], zh["model_name"], zh["model_version"]) == ("zh-CN", "酒驾毒驾", 3)
    assert [(m["code"], m["name"]) for m in zh["milestones"]] == [("case_opened", "立案"), ("penalty_decided",
                                                                                          "作出处罚决定")]
    assert [m["name"] for m in en["milestones"]] == ["case opened", "penalty decided"]
    assert zh["key_points"] == [{"code": "k1", "text": "核实检测结果"}]
    assert en["measures"][0]["text"] == "penalty per law"
    assert (zh["category_label"], zh["status_label"], en["status_label"]) == ("个人处罚类", "已派发", "dispatched")
    assert next(t for t in listed if t["id"] == task_id)["milestones"][0]["name"] == "立案"  # lang= wins

    for action in ("accept", "start"):
        assert (await step(svc, task_id, ZH, action)).status_code == 200
    unknown = await step(svc, task_id, ZH, "complete_milestone", milestone="nope")
    early = await step(svc, task_id, EN, "complete_milestone", milestone="penalty_decided")
    assert unknown.status_code == 422 and unknown.json()["title"] == "输入无效"
    assert "nope" in unknown.json()["detail"] and "case_opened" in unknown.json()["detail"]
    assert CJK.search(unknown.json()["detail"]) and unknown.json()["type"].endswith("/invalid")
    assert early.status_code == 409 and early.json()["detail"].startswith("milestones are ticked one by one")
    done = await step(svc, task_id, ZH, "complete_milestone", milestone="case_opened")
    by_text = await step(svc, task_id, ZH, "complete_milestone", milestone="作出处罚决定")  # an older client's way
    assert done.status_code == by_text.status_code == 200
    assert [m["done_at"] is not None for m in by_text.json()["milestones"]] == [True, True]
    history = (await read(svc, task_id, EN))["history"]
    assert [h["milestone"] for h in history if h["action"] == "complete_milestone"] == ["case_opened",
                                                                                        "penalty_decided"]


async def test_an_english_v1_order_reads_in_chinese_from_the_shipped_catalogue(svc: Svc) -> None:
    await set_modes(svc, {"ps-yiqiao": "deep"})
    v1 = order("ps-yiqiao", "personal_penalty", model_id="P01",
               milestones={"case opened": dt.timedelta(days=1), "penalty decided": dt.timedelta(days=7)})
    v1 = v1.model_copy(update={"key_points": ["confirm the blood-alcohol or drug test result"],
                               "measures": ["a measure nobody translated"]})
    task_id = await receive(svc, v1)
    zh = await read(svc, task_id, ZH)
    assert [(m["code"], m["name"]) for m in zh["milestones"]] == [("case_opened", "立案"),
                                                                  ("penalty_decided", "作出处罚决定")]
    assert zh["key_points"] == [{"code": "k1", "text": "核实血液酒精或毒品检测结果"}]
    assert zh["measures"] == [{"code": "m1", "text": "a measure nobody translated"}]  # unknown: kept as it was
    assert zh["model_version"] == 1
    for action in ("accept", "start"):
        assert (await step(svc, task_id, EN, action)).status_code == 200
    assert (await step(svc, task_id, EN, "complete_milestone", milestone="case_opened")).status_code == 200


async def test_the_migration_gives_orders_from_before_codes_their_codes_and_chinese(database_url: str) -> None:
    engine = make_engine(database_url, schema="dispatch")
    await ensure_schema(engine, "dispatch")
    tasks = table("task_order", column("id"), column("key_points", JSON), column("milestones", JSON),
                  column("measures", JSON), column("model_version"))
    old = {"id": "t-old", "incident_id": "i", "model_id": "P01", "source": "person", "entity_ref": "person:x",
           "category": "personal_penalty", "unit_id": "ps-yiqiao", "status": "in_progress", "version": 3,
           "deadline_at": WHEN, "routing_reason": "", "created_at": WHEN, "updated_at": WHEN,
           "key_points": ["open the drunk/drugged-driving case"],
           "measures": ["one education session"],
           "milestones": [{"name": "case opened", "due_at": "2030-01-01T00:00:00+00:00", "done_at": "2029-12-30"},
                          {"name": "penalty decided", "due_at": "2030-01-02T00:00:00+00:00", "done_at": None}]}
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(MIGRATIONS, sync), "3aaab8ea9c7c"))

            def insert_old(sync) -> None:  # noqa: ANN001 - the table as it was before the migration
                before = MetaData()
                before.reflect(sync, only=["task_order"])
                sync.execute(before.tables["task_order"].insert().values(**old))

            await conn.run_sync(insert_old)
        await upgrade(engine, MIGRATIONS, schema="dispatch")
        async with engine.connect() as conn:
            row = (await conn.execute(select(tasks).where(tasks.c.id == "t-old"))).one()
    finally:
        await engine.dispose()
    assert row.key_points == [{"code": "k1", "text": {"zh-CN": "对酒驾毒驾行为立案查处",
                                                      "en": "open the drunk/drugged-driving case"}}]
    assert row.measures[0]["text"]["zh-CN"] == "开展一次宣教"
    assert [(m["code"], m["text"]["zh-CN"], m["done_at"]) for m in row.milestones] == [
        ("case_opened", "立案", "2029-12-30"), ("penalty_decided", "作出处罚决定", None)]
    assert row.model_version is None
