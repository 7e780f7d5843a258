"""``train compare``: one table row per run (or ensemble), each co-learning run paired with
its plain baseline, like the paper's ablation table.

A row that is not plain (MMCL, FAM only, FRM only) is paired with the plain row of the same
kind (run or ensemble), backbone, modality, dataset and protocol whose setup is otherwise
the same: every compared config key (``train.runs.NOT_COMPARED`` lists the keys that are
not), the WORKDIR's manifest, the samples per part and the epochs done. The delta is
this row's test accuracy minus the plain row's, in points. When no plain row qualifies,
the row says why: no plain row of that backbone/modality/dataset/protocol (naming the
closest one and how it differs), one that differs in more than the objective (and in
what), or several that match. ``ignore`` names keys (or key prefixes, e.g. ``run.seed``)
whose differences are accepted; a pair made despite them lists them.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from train.errors import TrainError
from train.run_files import expand_runs, labels_for
from train.runs import Row, read_ensemble, read_run

FORMATS = ("table", "markdown", "csv")
COLUMNS = ("run", "backbone", "modality", "objective", "dataset", "protocol", "epochs",
           "checkpoint", "test top-1", "test top-5", "from", "plain run", "Δ top-1",
           "Δ top-5", "notes")
CSV_COLUMNS = ("run", "path", "kind", "backbone", "modality", "objective", "dataset",
               "protocol", "epochs", "checkpoint", "test_top1", "test_top5", "source",
               "plain_run", "delta_top1", "delta_top5", "notes")
_GROUP_FIELDS = ("backbone", "modality", "dataset", "protocol")
SHOWN_DIFFERENCES = 4


def compare(paths: Iterable[str | os.PathLike], ignore: Sequence[str] = ()) -> list[Row]:
    """Rows for run directories (a folder of runs stands for its runs) and ensemble records
    (``train ensemble``'s ``.json``, or the fused ``.npz`` it lies beside), paired."""
    inputs: list[tuple[str, Path]] = []
    for path in map(Path, paths):
        if path.is_file() or path.suffix in (".json", ".npz"):
            record = path.with_suffix(".json")
            if not record.is_file():
                raise TrainError(f"{path}: no ensemble record {record.name} (`train "
                                 "ensemble --output FUSED.npz` writes FUSED.json)")
            inputs.append(("ensemble", record))
        else:
            inputs.extend(("run", run) for run in expand_runs([path]))
    if not inputs:
        raise TrainError("nothing to compare: give run directories or ensemble records")
    labels = labels_for([path for _, path in inputs])
    rows = [read_run(path, label) if kind == "run" else read_ensemble(path, label)
            for (kind, path), label in zip(inputs, labels)]
    pair(rows, ignore)
    return rows


def differences(row: dict[str, Any], base: dict[str, Any],
                ignore: Sequence[str] = ()) -> list[str]:
    """``key: this vs plain`` for every compared setting that differs."""
    found = []
    for key in sorted(set(row) | set(base)):
        bare = key.split(": ", 1)[-1]        # ensembles: "<modality>: <key>"
        if any(bare == name or bare.startswith(f"{name}.") for name in ignore):
            continue
        if row.get(key) != base.get(key):
            found.append(f"{key} {row.get(key)!r} vs {base.get(key)!r}")
    return found


def pair(rows: list[Row], ignore: Sequence[str] = ()) -> None:
    """Fill ``paired_with`` and the deltas of the non-plain rows, or say why not."""
    plain = [row for row in rows if row.objective == "plain"]
    for row in rows:
        if row.objective == "plain":
            continue
        same = [base for base in plain if base.group == row.group]
        if not same:
            row.notes.append(_no_group_reason(row, plain))
            continue
        apart = {id(base): differences(row.settings, base.settings, ignore) for base in same}
        matches = [base for base in same if not apart[id(base)]]
        if len(matches) > 1:
            row.notes.append("not paired: several plain rows match ("
                             + ", ".join(base.label for base in matches)
                             + "); compare them separately")
            continue
        if not matches:
            closest = min(same, key=lambda base: len(apart[id(base)]))
            shown = apart[id(closest)]
            more = f" and {len(shown) - SHOWN_DIFFERENCES} more" \
                if len(shown) > SHOWN_DIFFERENCES else ""
            row.notes.append(f"not paired with {closest.label}: it differs in more than the "
                             f"objective ({'; '.join(shown[:SHOWN_DIFFERENCES])}{more}); "
                             "--ignore KEY accepts a difference")
            continue
        base = matches[0]
        row.paired_with = base.label
        accepted = differences(row.settings, base.settings)
        if accepted:
            row.notes.append("paired despite " + "; ".join(accepted))
        if row.top1 is not None and base.top1 is not None:
            row.delta_top1 = row.top1 - base.top1
            row.delta_top5 = row.top5 - base.top5
        else:
            missing = row.label if row.top1 is None else base.label
            row.notes.append(f"no delta: {missing} has no test accuracy")


def _no_group_reason(row: Row, plain: list[Row]) -> str:
    wanted = ", ".join(f"{name} {getattr(row, name)}" for name in _GROUP_FIELDS)
    reason = f"no plain {row.kind} with {wanted}"
    candidates = [base for base in plain if base.kind == row.kind]
    if not candidates:
        return reason + " among the inputs"

    def apart(base: Row) -> list[str]:
        return [name for name in _GROUP_FIELDS if getattr(base, name) != getattr(row, name)]

    closest = min(candidates, key=lambda base: len(apart(base)))
    return reason + f"; closest: {closest.label} (" + ", ".join(
        f"{name} {getattr(closest, name)}" for name in apart(closest)) + ")"


# --------------------------------------------------------------------------- formats


def _percent(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"


def cells(row: Row) -> list[str]:
    return [row.label, row.backbone, row.modality, row.objective, row.dataset, row.protocol,
            row.epochs, row.checkpoint, _percent(row.top1), _percent(row.top5),
            row.source or "-", row.paired_with or "-", _percent(row.delta_top1, True),
            _percent(row.delta_top5, True), "; ".join(row.notes)]


def format_table(rows: Sequence[Row]) -> str:
    """Aligned columns for the terminal (the notes column last, unpadded)."""
    lines = [list(COLUMNS)] + [cells(row) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join([cell.ljust(width) for cell, width in zip(line, widths)]
                               + [line[-1]]).rstrip() for line in lines) + "\n"


def format_markdown(rows: Sequence[Row]) -> str:
    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"
    right = {"test top-1", "test top-5", "Δ top-1", "Δ top-5"}
    rule = "|" + "|".join("---:" if c in right else "---" for c in COLUMNS) + "|"
    return "\n".join([line(COLUMNS), rule] + [line(cells(row)) for row in rows]) + "\n"


def format_csv(rows: Sequence[Row]) -> str:
    """Numbers in percent (unrounded), empty when unknown."""
    def number(value: float | None) -> str:
        return "" if value is None else repr(round(100 * value, 6))
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([row.label, str(row.path), row.kind, row.backbone, row.modality,
                         row.objective, row.dataset, row.protocol, row.epochs,
                         row.checkpoint, number(row.top1), number(row.top5), row.source,
                         row.paired_with or "", number(row.delta_top1),
                         number(row.delta_top5), "; ".join(row.notes)])
    return buffer.getvalue()


def render(rows: Sequence[Row], kind: str) -> str:
    if kind not in FORMATS:
        raise TrainError(f"format must be one of {', '.join(FORMATS)}, not {kind!r}")
    return {"table": format_table, "markdown": format_markdown, "csv": format_csv}[kind](rows)
