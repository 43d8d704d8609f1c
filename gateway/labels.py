"""`GET /api/v1/labels`: the text of every code a screen shows (modes, categories, statuses, actions, unit kinds,
sources, board themes, indicators, colours, report items…) in the caller's language, from shared/locale."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from shared.errors import InvalidParameter
from shared.i18n import Lang, LanguageDep, labels

router = APIRouter(tags=["labels"])


class LabelsOut(BaseModel):
    """Label groups: {group: {code: text}}."""

    lang: Lang = Field(description="the language of the texts")
    groups: dict[str, dict[str, str]]


@router.get("/api/v1/labels", response_model=LabelsOut)
async def get_labels(response: Response, lang: LanguageDep,
                     group: Annotated[list[str] | None, Query(description="only these groups")] = None) -> LabelsOut:
    """Every code's text, zh-CN by default (`Accept-Language` or `lang=en`); no login needed: the texts hold
    no data, and the login screen shows them too."""
    every = labels(lang)
    unknown = sorted(set(group or ()) - set(every))
    if unknown:
        raise InvalidParameter("group", f"no label group {', '.join(unknown)}; groups are {', '.join(sorted(every))}")
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Vary"] = "Accept-Language"
    return LabelsOut(lang=lang, groups={g: t for g, t in every.items() if not group or g in group})
