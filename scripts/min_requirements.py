"""Print the lowest versions setup.cfg allows, one ``name==version`` per line.

Every requirement of ``install_requires`` and of the extras named on the command line must
declare a floor (``name>=version``, optionally with an upper bound); the floor becomes the
pin. A requirement without a floor is an error: its lowest version would be untested.
``scripts/test-min-versions.sh`` installs these pins and runs the fast tests with them.
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*(;.*)?$")


def requirement_lines(text: str) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [line for line in lines if line]


def pin(requirement: str) -> str:
    match = FLOOR.match(requirement)
    if match is None:
        raise SystemExit(f"setup.cfg: cannot read the requirement {requirement!r}")
    name, extras, specifiers, marker = match.groups()
    floors = [part.strip()[2:].strip() for part in specifiers.split(",")
              if part.strip().startswith(">=")]
    if len(floors) != 1:
        raise SystemExit(f"setup.cfg: {requirement!r} must declare one floor (name>=version) "
                         "so that its lowest version is tested")
    return f"{name}{extras or ''}=={floors[0]}{marker or ''}"


def main(extras: list[str]) -> None:
    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    lines = requirement_lines(config["options"]["install_requires"])
    for extra in extras:
        lines += requirement_lines(config["options.extras_require"][extra])
    pins: dict[str, str] = {}
    for line in lines:
        pinned = pin(line)
        name = re.split(r"[\[=;]", pinned, maxsplit=1)[0].lower().replace("_", "-")
        if name in pins and pins[name] != pinned:
            # an extra may raise a floor of install_requires: the higher floor wins
            pinned = max(pins[name], pinned, key=lambda p: _version(p))
        pins[name] = pinned
    print("\n".join(pins.values()))


def _version(pinned: str) -> tuple[int, ...]:
    version = pinned.split("==", 1)[1].split(";", 1)[0]
    return tuple(int(part) for part in re.findall(r"\d+", version))


if __name__ == "__main__":
    main(sys.argv[1:])
