"""What the commands that run a model share: their stage options, and exit 3 when the
model cannot go on (out of memory, or the model call failing)."""

from __future__ import annotations

import functools
import logging
import sys

import click

from pipeline.cli.options import RUN_STOPPED_EXIT, stage_options
from pipeline.models.errors import BatchTooLargeError, ModelRunError
from pipeline.stages.model_stage import NO_JOBS_MESSAGE

log = logging.getLogger(__name__)

MODEL_FAILED_EXIT = RUN_STOPPED_EXIT    # the model ran out of memory or failed


def _refuse_jobs(ctx, param, value):
    if value is not None and value > 1:
        raise click.BadParameter(f"{value}: {NO_JOBS_MESSAGE}", ctx=ctx, param=param)
    return value


def model_stage_options(function):
    """The stage options of :func:`pipeline.cli.options.stage_options`, with -j/--jobs
    hidden and refused above 1 with the reason (each worker would load its own model)."""
    return stage_options(function, jobs_option=click.option(
        "-j", "--jobs", type=int, hidden=True, expose_value=False, callback=_refuse_jobs))


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
