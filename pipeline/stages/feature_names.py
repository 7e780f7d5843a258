"""Default cache names of the feature stages: readable, and distinct per model/question."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any


def derived_cache_name(model_name: str, *extra: Any) -> str:
    """``<model's last path part>-<8 hex digits of a hash of the model and extras>``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name.rstrip("/").split("/")[-1]).strip("-.")
    digest = hashlib.sha256(json.dumps([model_name, *extra], default=str).encode()).hexdigest()
    return f"{stem or 'model'}-{digest[:8]}"
