"""``train plot RUN... -o curves.png``: loss and accuracy curves of runs on shared axes."""

from __future__ import annotations

from pathlib import Path

import click

from train.cli.common import user_errors_exit


@click.command("plot")
@click.argument("runs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("curves.png"), help="Picture to write: .png, .svg or .pdf.")
@click.option("--title", default=None, help="Title above both panels [default: none].")
@click.option("--no-terms", is_flag=True,
              help="Plot only the total loss, not each named loss (cls, contrastive, "
                   "refine).")
@user_errors_exit
def plot_command(runs: tuple[Path, ...], output: Path, title: str | None,
                 no_terms: bool) -> None:
    """Training loss (and its named terms) and top-1 accuracy (train, val, test) per epoch
    of one or several runs, one colour per run, from their metrics.jsonl. A folder of runs
    stands for all of them."""
    from train.curves import plot_runs
    from train.run_files import expand_runs

    paths = expand_runs(runs)
    plot_runs(paths, output, title=title, terms=not no_terms)
    click.echo(f"curves of {len(paths)} run(s): {output}")
