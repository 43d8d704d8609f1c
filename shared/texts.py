"""Bilingual texts as data: a {zh-CN, en} map, a coded line (key point, milestone, measure), and the upgrade of
tracing models and task-order lines written before texts were bilingual (English strings, milestones by name)."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.i18n import LANGS, Lang, legacy_text, pick, slug

MAX_TEXT = 500


def _both(value: dict[Lang, str]) -> dict[Lang, str]:
    missing = [lang for lang in LANGS if not (value.get(lang) or "").strip()]
    if missing:
        raise ValueError(f"a text needs every language ({', '.join(LANGS)}); missing {', '.join(missing)}")
    if any(len(v) > MAX_TEXT for v in value.values()):
        raise ValueError(f"a text is at most {MAX_TEXT} characters")
    return value


#: one text in every language: {"zh-CN": "…", "en": "…"}
Texts = Annotated[dict[Lang, str], AfterValidator(_both)]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="stable code (lower case, _)")]


class TextLine(BaseModel):
    """A key point, milestone or measure: a stable code and its text in every language."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: Code
    text: Texts

    def read(self, lang: Lang) -> str:
        """The text in a language."""
        return pick(self.text, lang) or self.code


def _filled(english: str) -> dict[str, str]:
    texts = legacy_text(english)
    return {"zh-CN": texts.get("zh-CN") or english, "en": english}  # an unknown English text stands for both


def legacy_lines(lines: list[Any], prefix: str) -> list[Any]:
    """Plain strings as coded lines (`k1`, `k2`… in order), their Chinese from the shipped catalogue."""
    return [{"code": f"{prefix}{i}", "text": _filled(x)} if isinstance(x, str) else x
            for i, x in enumerate(lines, start=1)]


def legacy_milestone(m: Any) -> Any:
    """A milestone given by English `name` as one with a stable code (the slug of the name) and both texts."""
    if not isinstance(m, dict) or "name" not in m or "text" in m:
        return m
    rest = {k: v for k, v in m.items() if k != "name"}
    name = str(m["name"])
    return {"code": rest.pop("code", None) or slug(name), "text": _filled(name), **rest}


def upgrade_legacy_model(data: Any) -> Any:
    """A tracing model dict from before bilingual texts, in today's shape (others unchanged)."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    if "name_zh" in data:
        zh = data.pop("name_zh") or data.get("id", "")
        data.setdefault("name", {"zh-CN": zh, "en": str(data.get("id", zh))})
    if isinstance(data.get("description"), str):
        data["description"] = _filled(data["description"])
    for key, prefix in (("key_points", "k"), ("measures", "m")):
        if isinstance(data.get(key), list):
            data[key] = legacy_lines(data[key], prefix)
    if isinstance(data.get("milestones"), list):
        data["milestones"] = [legacy_milestone(m) for m in data["milestones"]]
    return data
