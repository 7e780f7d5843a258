"""What the commands that run a model share: their stage options, and exit 3 when the
model cannot go on (out of memory, or the model call failing)."""

from __future__ import annotations

import functools
import logging
import sys

import click

from pipeline.models.errors import BatchTooLargeError, ModelRunError
from pipeline.stages.model_stage import NO_JOBS_MESSAGE

log = logging.getLogger(__name__)

#: exit status when the model ran out of memory or failed (2 = user error, 1 = failed samples)
MODEL_FAILED_EXIT = 3


def _refuse_jobs(ctx, param, value):
    if value is not None and value > 1:
        raise click.BadParameter(f"{value}: {NO_JOBS_MESSAGE}", ctx=ctx, param=param)
    return value


def model_stage_options(function):
    """--skip-failures, --retry-failures, --overwrite, --no-progress, --rebuild; and
    -j/--jobs, hidden and refused above 1 with the reason (the other stage commands take
    it: :func:`pipeline.cli.options.stage_options`)."""
    options = [
        click.option("-j", "--jobs", type=int, hidden=True, expose_value=False,
                     callback=_refuse_jobs),
        click.option("--skip-failures", is_flag=True,
                     help="Exit 0 even if some samples failed (they stay in the ledger)."),
        click.option("--retry-failures", is_flag=True,
                     help="Redo finished shards that recorded failed samples."),
        click.option("--overwrite", is_flag=True,
                     help="Delete a cache made with other settings and rebuild it."),
        click.option("--no-progress", is_flag=True, help="Hide the progress bar."),
        click.option("--rebuild", is_flag=True,
                     help="Delete this cache even if its settings match, and rebuild it."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def model_errors_exit(function):
    """Print an out-of-memory or model failure as one clear line and exit 3 (the
    traceback is logged at --log-level DEBUG)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (BatchTooLargeError, ModelRunError) as error:
            log.debug("the model stopped the run", exc_info=error)
            click.echo(f"error: {error}", err=True)
            sys.exit(MODEL_FAILED_EXIT)
    return wrapper
