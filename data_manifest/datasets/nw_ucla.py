"""NW-UCLA names: ``aAA_sSS_eEE_vVV`` (action, subject, episode, view)."""

from __future__ import annotations

import re

from data_manifest.classes import NW_UCLA_ACTION_CODES

NAME_PATTERN = re.compile(r"^a(\d{2})_s(\d{2})_e(\d{2})_v(\d{2})$")


def parse_nw_ucla_name(name: str) -> dict[str, int] | None:
    match = NAME_PATTERN.match(name)
    if match is None:
        return None
    action, subject, episode, view = (int(g) for g in match.groups())
    return {"action": action, "subject": subject, "episode": episode, "view": view}


def nw_ucla_label(action: int) -> int:
    try:
        return NW_UCLA_ACTION_CODES.index(action)
    except ValueError:
        raise ValueError(f"NW-UCLA action a{action:02d} is not one of the 10 classes") from None
