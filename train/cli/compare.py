"""``train compare RUN...``: one row per run or ensemble, co-learning runs paired with their
plain baseline (the paper's ablation table)."""

from __future__ import annotations

from pathlib import Path

import click

from train.cli.common import user_errors_exit


@click.command("compare")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "kind", type=click.Choice(["table", "markdown", "csv"]),
              default="table", help="What to print on the terminal.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the table as CSV here (numbers in percent).")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the table as Markdown here.")
@click.option("--ignore", multiple=True, metavar="KEY",
              help="Pair runs even though they differ in this config key or section, e.g. "
                   "--ignore run.seed (repeatable); the row lists what was accepted. "
                   "[default: none: runs pair only when they differ in the objective alone]")
@user_errors_exit
def compare_command(inputs: tuple[Path, ...], kind: str, csv_path: Path | None,
                    markdown_path: Path | None, ignore: tuple[str, ...]) -> None:
    """Compare runs: backbone, modality, objective (plain, MMCL, FAM only, FRM only),
    dataset and protocol, epochs, the selected checkpoint (and the part it was selected
    on), its test top-1/top-5, and each co-learning run's gain over the plain run of the
    same backbone, modality and protocol.

    INPUTS are run directories (a folder of runs stands for all of them) and ensemble
    records (the .json that `train ensemble --output FUSED.npz` writes beside FUSED.npz).
    Test accuracy is that of the checkpoint `--checkpoint auto` picks (never a best
    chosen on the test set), from `train eval`'s report or else the training log; a run
    with neither says so. Runs that differ in more than the objective are not paired: the
    notes say why.
    """
    from train.compare import compare, render
    from train.files import write_text_atomic

    rows = compare(inputs, ignore)
    click.echo(render(rows, kind), nl=False)
    for path, file_kind in ((csv_path, "csv"), (markdown_path, "markdown")):
        if path is not None:
            write_text_atomic(path, render(rows, file_kind))
            click.echo(f"{file_kind}: {path}", err=True)
