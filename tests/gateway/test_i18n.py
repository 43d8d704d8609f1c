"""Chinese first, through the gateway as a new user meets it: a drunk-driving incident's P01 task order read in
zh-CN and en, completed milestone by milestone by code; labels; localised problems (the type never changes)."""
from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.e2e.helpers import drunk_incident
from tests.gateway.conftest import INSIDE, SQUADRON, Live

pytestmark = pytest.mark.system

CJK = re.compile(r"[\u4e00-\u9fff]")
ZH, EN = {"accept-language": "zh-CN,zh;q=0.9"}, {"accept-language": "en-US,en;q=0.8"}


def _p01(http: httpx.Client, live: Live) -> dict:
    incident = http.post("/api/v1/incidents", json=drunk_incident(), headers=live.headers["platform"])
    assert incident.status_code == 201, incident.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = http.get("/api/v1/tasks", params={"incident_id": incident.json()["id"]}, headers=live.headers["admin"])
        found = [t for t in r.json().get("items", []) if t["model_id"] == "P01"]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError("no P01 task order")


def test_a_p01_order_reads_in_chinese_by_default_and_in_english_and_completes_by_code(live: Live) -> None:
    with httpx.Client(base_url=live.gateway, timeout=30) as http:
        task = _p01(http, live)
        holder = {INSIDE: "station", SQUADRON: "squadron"}.get(task["unit_id"])
        assert holder, f"P01 went to {task['unit_id']}"
        auth = live.headers[holder]
        path = f"/api/v1/tasks/{task['id']}"
        zh = http.get(path, headers=auth | ZH).json()
        default = http.get(path, headers=auth).json()
        en = http.get(path, headers=auth | EN).json()
        assert zh["lang"] == default["lang"] == "zh-CN" and en["lang"] == "en"
        assert [m["name"] for m in zh["milestones"]] == ["立案", "作出处罚决定", "完成宣教谈话"]
        assert [m["name"] for m in en["milestones"]] == ["case opened", "penalty decided", "education session held"]
        assert all(CJK.search(x["text"]) for x in zh["key_points"] + zh["measures"])
        assert not any(CJK.search(x["text"]) for x in en["key_points"] + en["measures"])
        assert zh["model_name"] == "酒驾毒驾" and zh["category_label"] == "个人处罚类"
        assert en["category_label"] == "personal penalty" and zh["model_version"] == 1
        codes = [m["code"] for m in zh["milestones"]]
        assert codes == [m["code"] for m in en["milestones"]] == ["case_opened", "penalty_decided",
                                                                   "education_session_held"]
        for action in ("accept", "start"):
            assert http.post(f"{path}/transitions", json={"action": action}, headers=auth).status_code == 200
        early = http.post(f"{path}/transitions", json={"action": "complete_milestone", "milestone": codes[1]},
                          headers=auth | ZH)
        assert early.status_code == 409 and early.json()["title"] == "状态冲突"
        assert "case_opened" in early.json()["detail"] and CJK.search(early.json()["detail"])
        for code, lang in zip(codes, (ZH, EN, ZH), strict=True):
            done = http.post(f"{path}/transitions", json={"action": "complete_milestone", "milestone": code},
                             headers=auth | lang)
            assert done.status_code == 200, done.text
            ticked = next(m for m in done.json()["milestones"] if m["code"] == code)
            assert ticked["done_at"] and bool(CJK.search(ticked["name"])) == (lang is ZH)
        history = http.get(path, headers=auth).json()["history"]
        assert [h["milestone"] for h in history if h["action"] == "complete_milestone"] == codes


def test_labels_are_served_to_anyone_in_either_language(live: Live) -> None:
    with httpx.Client(base_url=live.gateway, timeout=30) as http:
        zh = http.get("/api/v1/labels")
        en = http.get("/api/v1/labels", params={"lang": "en"}, headers=ZH)  # lang= wins over the header
        assert zh.status_code == en.status_code == 200
        assert zh.json()["lang"] == "zh-CN" and en.json()["lang"] == "en"
        assert zh.json()["groups"]["mode"] == {"basic": "基础融合", "deep": "深度融合", "full": "全面融合"}
        assert en.json()["groups"]["unit_kind"]["station"] == "station"
        assert set(zh.json()["groups"]) == set(en.json()["groups"]) >= {
            "mode", "category", "task_status", "task_action", "unit_kind", "source", "board_theme", "indicator",
            "colour", "report_item"}
        one = http.get("/api/v1/labels", params={"group": "colour"}, headers=EN).json()
        assert list(one["groups"]) == ["colour"]
        bad = http.get("/api/v1/labels", params={"group": "nope"})
        assert bad.status_code == 422 and bad.json()["type"].endswith("/invalid-parameter")


def test_problems_are_localised_and_keep_their_type(live: Live) -> None:
    with httpx.Client(base_url=live.gateway, timeout=30) as http:
        station = live.headers["station"]
        outside = f"/api/v1/tasks/{live.objects['outside']['task_id']}"
        zh, en = http.get(outside, headers=station | ZH).json(), http.get(outside, headers=station | EN).json()
        assert zh["type"] == en["type"] == "https://jiaozhi.dev/problems/not-found"
        assert (zh["title"], en["title"]) == ("未找到", "Not found") and CJK.search(zh["detail"])
        anonymous = http.get("/api/v1/tasks").json()
        assert anonymous["type"].endswith("/unauthorized") and CJK.search(anonymous["title"])
        invalid = http.get("/api/v1/tasks", params={"overdue": "maybe"}, headers=live.headers["command"] | ZH).json()
        assert invalid["status"] == 422 and "overdue" in invalid["detail"] and CJK.search(invalid["detail"])
