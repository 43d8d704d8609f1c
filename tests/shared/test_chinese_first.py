"""Chinese first: every tracing model, label, problem type and message has a Chinese text that exists, holds a CJK
character, differs from the English, and uses the glossary term (DOMAIN.md §8) for every glossary word the English
uses. The glossary is copied to tests/data (checked against DOMAIN.md where the spec is present)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.tracing.catalogue import Catalogue
from shared import errors
from shared.i18n import LANGS, catalogue, negotiate

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY_COPY = ROOT / "tests" / "data" / "domain_glossary.md"
DOMAIN = ROOT.parent / "shared" / "docs" / "DOMAIN.md"
CJK = re.compile(r"[\u4e00-\u9fff]")


def glossary() -> dict[str, str]:
    """English term → Chinese term, from the §8 text."""
    text = GLOSSARY_COPY.read_text(encoding="utf-8").split("\n\n", 2)[2]
    pairs = {}
    for piece in " ".join(text.split()).rstrip(".").split("·"):
        match = re.match(r"^\s*(.+?)\s+([\u4e00-\u9fff]+)", piece)
        assert match, piece
        pairs[match.group(1).strip()] = match.group(2)
    return pairs


GLOSSARY = glossary()


def _terms(english: str) -> list[tuple[str, str]]:
    return [(en, zh) for en, zh in GLOSSARY.items()
            if re.search(rf"(?<![\w-]){re.escape(en)}(s|es)?(?![\w-])", english, re.IGNORECASE)]


def problems_with(zh: str | None, en: str | None) -> list[str]:
    """What is wrong with a Chinese text beside its English."""
    if not zh or not zh.strip():
        return ["missing"]
    out = []
    if not CJK.search(zh):
        out.append("no CJK character")
    if en is not None and zh.strip() == en.strip():
        out.append("equals the English")
    out += [f"lacks {zh_term} for {en_term!r}" for en_term, zh_term in _terms(en or "") if zh_term not in zh]
    return out


def test_the_glossary_copy_matches_the_domain_spec() -> None:
    assert len(GLOSSARY) == 25 and GLOSSARY["milestone"] == "工作节点" and GLOSSARY["task order"] == "任务单"
    if DOMAIN.exists():
        section = DOMAIN.read_text(encoding="utf-8").split("## 8. Glossary", 1)[1]
        assert " ".join(GLOSSARY_COPY.read_text(encoding="utf-8").split()).split("names in code", 1)[1] in \
            " ".join(section.split()), "tests/data/domain_glossary.md differs from DOMAIN.md §8: copy it again"


def test_the_check_catches_what_it_should() -> None:
    assert problems_with(None, "x") == ["missing"]
    assert problems_with("visit", "visit") == ["no CJK character", "equals the English"]
    assert problems_with("开展教育", "one education session") == ["lacks 宣教 for 'education'"]
    assert problems_with("开展宣教", "one education session") == []
    assert problems_with("派出所", "stations") == [] and problems_with("所", "Stations") != []


def _model_texts() -> list[tuple[str, str | None, str | None]]:
    cat = Catalogue.load(ROOT / "services" / "tracing" / "catalogue.json")
    out = []
    for m in cat.models:
        out += [(f"{m.id}.name", m.name.get("zh-CN"), m.name.get("en")),
                (f"{m.id}.description", m.description.get("zh-CN"), m.description.get("en"))]
        for what, lines in (("key_point", m.key_points), ("milestone", m.milestones), ("measure", m.measures)):
            out += [(f"{m.id}.{what}.{line.code}", line.text.get("zh-CN"), line.text.get("en")) for line in lines]
    return out


def test_every_tracing_model_text_is_in_chinese() -> None:
    texts = _model_texts()
    assert len(texts) > 24 * 7
    bad = {key: p for key, zh, en in texts if (p := problems_with(zh, en))}
    assert not bad, bad


def test_every_label_is_in_both_languages_and_chinese_first() -> None:
    zh, en = catalogue("zh-CN")["labels"], catalogue("en")["labels"]
    assert zh.keys() == en.keys()
    bad = {}
    for group, codes in zh.items():
        assert codes.keys() == en[group].keys(), group
        bad |= {f"{group}.{code}": p for code, text in codes.items() if (p := problems_with(text, en[group][code]))}
    assert not bad, bad


def _kinds_in_code() -> set[str]:
    kinds, todo = set(), [errors.DomainError]
    while todo:
        cls = todo.pop()
        kinds.add(cls.kind)
        todo += cls.__subclasses__()
    kinds |= set(errors._HTTP_KINDS.values()) | {"validation", "internal", "http-error"}
    for path in [*ROOT.glob("gateway/*.py"), *ROOT.glob("services/*/*.py"), *ROOT.glob("shared/*.py")]:
        source = path.read_text(encoding="utf-8")
        kinds |= set(re.findall(r"(?:problem|Refused|send_problem)\(\s*(?:send,\s*)?\d{3},\s*\"([a-z-]+)\"", source))
        kinds |= set(re.findall(r"return \d{3}, \"([a-z-]+)\"", source))
        kinds |= set(re.findall(r"kind, title = (?:\d{3}, )?\"([a-z-]+)\"", source))
    return kinds


def test_every_problem_type_has_a_chinese_title_and_detail() -> None:
    zh, en = catalogue("zh-CN")["problems"], catalogue("en")["problems"]
    used = _kinds_in_code()
    assert {"not-found", "invalid-parameter", "invalid-cursor", "limit-out-of-range", "invalid-batch",
            "upstream-timeout", "unsupported-media-type"} <= used
    assert not used - zh.keys(), f"problem kinds without texts: {sorted(used - zh.keys())}"
    assert zh.keys() == en.keys()
    bad = {f"{kind}.{part}": p for kind in zh for part in ("title", "detail")
           if (p := problems_with(zh[kind][part], en[kind][part]))}
    assert not bad, bad


def test_every_message_is_in_chinese_with_the_same_parameters() -> None:
    zh, en = catalogue("zh-CN")["messages"], catalogue("en")["messages"]
    assert zh.keys() == en.keys()
    fields = re.compile(r"\{(\w+)\}")
    for key in zh:
        assert set(fields.findall(zh[key])) == set(fields.findall(en[key])), key
    bad = {key: p for key in zh if (p := problems_with(zh[key], en[key]))}
    assert not bad, bad


@pytest.mark.parametrize(("header", "lang", "expected"), [
    (None, None, "zh-CN"), ("en-US,en;q=0.9", None, "en"), ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh-CN"),
    ("fr, en;q=0.5, zh;q=0.9", None, "zh-CN"), ("de, en;q=0.3", None, "en"), ("zh-TW", None, "zh-CN"),
    ("en;q=0", None, "zh-CN"), ("garbage;;q=x", None, "zh-CN"), ("zh-CN", "en", "en"), ("en", "xx", "en")])
def test_the_language_is_lang_then_accept_language_then_chinese(header: str | None, lang: str | None,
                                                                 expected: str) -> None:
    assert negotiate(header, lang) == expected
    assert expected in LANGS


def test_labels_cover_every_code_a_screen_shows() -> None:
    import json
    from typing import get_args

    from services.dispatch.lifecycle import STATUSES, STEPS
    from shared import events

    labels = catalogue("zh-CN")["labels"]
    data = ROOT / "services" / "assessment" / "data"
    expected = {
        "mode": get_args(events.Mode), "category": get_args(events.Category), "source": get_args(events.Source),
        "unit_kind": get_args(events.UnitKind), "activity_kind": get_args(events.ActivityKind),
        "vehicle_kind": get_args(events.VehicleKind), "area_type": get_args(events.AreaType),
        "task_status": STATUSES, "task_action": tuple(STEPS),
        "colour": ("blue", "yellow", "red"),
        "board_theme": [t["id"] for t in json.loads((data / "board.json").read_text())["themes"]],
        "indicator": [i["id"] for i in json.loads((data / "indicators.json").read_text())["indicators"]],
        "report_item": [i["id"] for i in json.loads((data / "report_items.json").read_text())["items"]],
        "report_section": list(json.loads((data / "report_items.json").read_text())["sections"]),
        "unit": {i["unit"] for i in json.loads((data / "report_items.json").read_text())["items"]},
    }
    missing = {group: sorted(set(codes) - labels.get(group, {}).keys()) for group, codes in expected.items()}
    assert not {g: m for g, m in missing.items() if m}, missing
