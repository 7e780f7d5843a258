"""Class names: the built-in datasets' (NTU RGB+D 120's first 60 classes are NTU RGB+D 60's;
label = action - 1), and users' class name files."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from data_manifest.errors import DataError

NTU120_CLASSES: tuple[str, ...] = (
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup",
    "throw", "sitting down", "standing up (from sitting position)", "clapping", "reading",
    "writing", "tear up paper", "wear jacket", "take off jacket", "wear a shoe",
    "take off a shoe", "wear on glasses", "take off glasses", "put on a hat/cap",
    "take off a hat/cap", "cheer up", "hand waving", "kicking something", "reach into pocket",
    "hopping (one foot jumping)", "jump up", "make a phone call/answer phone",
    "playing with phone/tablet", "typing on a keyboard", "pointing to something with finger",
    "taking a selfie", "check time (from watch)", "rub two hands together", "nod head/bow",
    "shake head", "wipe face", "salute", "put the palms together",
    "cross hands in front (say stop)", "sneeze/cough", "staggering", "falling",
    "touch head (headache)", "touch chest (stomachache/heart pain)", "touch back (backache)",
    "touch neck (neckache)", "nausea or vomiting condition",
    "use a fan (with hand or paper)/feeling warm", "punching/slapping other person",
    "kicking other person", "pushing other person", "pat on back of other person",
    "point finger at the other person", "hugging other person",
    "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
    # NTU RGB+D 120 additions (A61-A120)
    "put on headphone", "take off headphone", "shoot at the basket", "bounce ball",
    "tennis bat swing", "juggling table tennis balls", "hush (quite)", "flick hair",
    "thumb up", "thumb down", "make ok sign", "make victory sign", "staple book",
    "counting money", "cutting nails", "cutting paper (using scissors)", "snapping fingers",
    "open bottle", "sniff (smell)", "squat down", "toss a coin", "fold paper",
    "ball up paper", "play magic cube", "apply cream on face", "apply cream on hand back",
    "put on bag", "take off bag", "put something into a bag", "take something out of a bag",
    "open a box", "move heavy objects", "shake fist", "throw up cap/hat",
    "hands up (both hands)", "cross arms", "arm circles", "arm swings", "running on the spot",
    "butt kicks (kick backward)", "cross toe touch", "side kick", "yawn", "stretch oneself",
    "blow nose", "hit other person with something", "wield knife towards other person",
    "knock over other person (hit with body)", "grab other person's stuff",
    "shoot at other person with a gun", "step on foot", "high-five", "cheers and drink",
    "carry something with other person", "take a photo of other person",
    "follow other person", "whisper in other person's ear",
    "exchange things with other person", "support somebody with hand",
    "finger-guessing game (playing rock-paper-scissors)",
)
NTU60_CLASSES: tuple[str, ...] = NTU120_CLASSES[:60]

# NW-UCLA action codes a01-a06, a08, a09, a11, a12 map to labels 0-9 in that order.
NW_UCLA_ACTION_CODES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)
NW_UCLA_CLASSES: tuple[str, ...] = (
    "pick up with one hand", "pick up with two hands", "drop trash", "walk around",
    "sit down", "stand up", "donning", "doffing", "throw", "carry",
)

# UTD-MHAD's 27 actions a1-a27 (labels 0-26), as its authors name them.
UTD_MHAD_CLASSES: tuple[str, ...] = (
    "right arm swipe to the left", "right arm swipe to the right", "right hand wave",
    "two hand front clap", "right arm throw", "cross arms in the chest", "basketball shoot",
    "right hand draw x", "right hand draw circle (clockwise)",
    "right hand draw circle (counter clockwise)", "draw triangle", "bowling (right hand)",
    "front boxing", "baseball swing from right", "tennis right hand forehand swing",
    "arm curl (two arms)", "tennis serve", "two hand push", "right hand knock on door",
    "right hand catch an object", "right hand pick up and throw", "jogging in place",
    "walking in place", "sit to stand", "stand to sit", "forward lunge (left foot forward)",
    "squat (two arms stretch out)",
)

_BY_DATASET = {
    "ntu60": NTU60_CLASSES,
    "ntu120": NTU120_CLASSES,
    "nw-ucla": NW_UCLA_CLASSES,
}
# class name lists known by name (``--classes utd-mhad``): the datasets' and UTD-MHAD's
CLASS_LISTS: dict[str, tuple[str, ...]] = {**_BY_DATASET, "utd-mhad": UTD_MHAD_CLASSES}


def class_names(dataset: str) -> tuple[str, ...] | None:
    """Class names of a known dataset, or None for user data (``csv``)."""
    return _BY_DATASET.get(dataset)


def read_class_names(path: str | os.PathLike, label_base: int = 0) -> list[str]:
    """Class names from a file: one name per line (line k names label k), or a CSV
    (``.csv``) with a ``name`` column and optionally a ``label`` column (counted from
    ``label_base``, like the data's labels; without it, row k names label k). A name of
    :data:`CLASS_LISTS` that is not a file gives that list (e.g. ``utd-mhad``)."""
    if str(path) in CLASS_LISTS and not Path(path).is_file():
        return list(CLASS_LISTS[str(path)])
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"class names file not found (known lists by name: "
                        f"{', '.join(CLASS_LISTS)})", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read the class names file ({error})", path=str(path)) from None
    if path.suffix.lower() == ".csv":
        return _names_from_csv(text, str(path), label_base)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    _check_names(names, str(path), [f"line {i + 1}" for i in range(len(names))])
    return names


def _names_from_csv(text: str, path: str, label_base: int) -> list[str]:
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    if "name" not in columns:
        raise DataError(f"a class names CSV needs a 'name' column (columns: "
                        f"{', '.join(columns) or 'none'})", path=path, line=1)
    rows = list(reader)
    if "label" not in columns:
        names = [(row["name"] or "").strip() for row in rows]
        _check_names(names, path, [f"line {i + 2}" for i in range(len(names))])
        return names
    by_label: dict[int, str] = {}
    for line, row in enumerate(rows, start=2):
        try:
            label = int(row["label"]) - label_base
        except (TypeError, ValueError):
            raise DataError(f"label {row['label']!r} is not an integer", path=path,
                            line=line) from None
        if label < 0 or label in by_label:
            raise DataError(f"label {label + label_base} is "
                            + ("below the label base" if label < 0 else "named twice"),
                            path=path, line=line)
        by_label[label] = (row["name"] or "").strip()
    missing = [str(k + label_base) for k in range(max(by_label, default=-1) + 1)
               if k not in by_label]
    if missing:
        raise DataError(f"no name for label(s) {', '.join(missing[:10])}", path=path)
    names = [by_label[k] for k in range(len(by_label))]
    _check_names(names, path, [f"label {k + label_base}" for k in range(len(names))])
    return names


def _check_names(names: list[str], path: str, where: list[str]) -> None:
    if not names:
        raise DataError("no class names", path=path)
    empty = [place for name, place in zip(names, where) if not name]
    if empty:
        raise DataError(f"empty class name at {', '.join(empty[:10])}", path=path)
    seen: dict[str, str] = {}
    for name, place in zip(names, where):
        if name in seen:
            raise DataError(f"class name {name!r} at {place} repeats {seen[name]}", path=path)
        seen[name] = place
