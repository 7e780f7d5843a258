"""NTU RGB+D names: ``SsssCcccPpppRrrrAaaa``; label = action - 1."""

from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")
NTU60_MAX_SETUP, NTU60_MAX_ACTION = 17, 60


def parse_ntu_name(name: str) -> dict[str, int] | None:
    """Metadata of an NTU sample name, or None if the name is not NTU-style."""
    match = NAME_PATTERN.match(name)
    if match is None:
        return None
    setup, camera, performer, replication, action = (int(g) for g in match.groups())
    return {"setup": setup, "camera": camera, "performer": performer,
            "replication": replication, "action": action}


def in_ntu60(meta: dict[str, int]) -> bool:
    return meta["setup"] <= NTU60_MAX_SETUP and meta["action"] <= NTU60_MAX_ACTION
