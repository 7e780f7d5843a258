"""Options shared by the stage commands, and turning errors into clean exits."""

from __future__ import annotations

import functools
import inspect
import sys

import click

from data_manifest.errors import DataError, MissingCacheError, StaleCacheError
from data_manifest.cache_names import check_cache_name
from pipeline.cache_lock import CacheBusyError
from pipeline.workers import WorkerDiedError

USER_ERRORS = (DataError, MissingCacheError, StaleCacheError, ValueError, FileNotFoundError,
               CacheBusyError)
#: exit statuses: 1 = some samples failed, 2 = a user error (bad input or options), 3 = the
#: run could not go on (a worker process was killed, or the model ran out of memory or
#: failed); finished shards are kept in every case
USER_ERROR_EXIT = 2
RUN_STOPPED_EXIT = 3


JOBS_OPTION = click.option("-j", "--jobs", default=1, type=click.IntRange(1),
                           help="Worker processes; each writes its own shards.")


def _plain_cache_name(ctx, param, value):
    if value is None:
        return None
    try:
        return check_cache_name(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from None


def cache_name_option(*declarations, **options):
    """A ``click.option`` holding a cache name: refused unless it is a plain name."""
    return click.option(*declarations, callback=_plain_cache_name, **options)


def stage_options(function, jobs_option=JOBS_OPTION):
    """-j/--jobs, --skip-failures, --retry-failures, --overwrite, --no-progress, --rebuild.

    ``jobs_option`` lets a command take -j its own way (the model stages refuse more
    than one worker). ``--rebuild`` is added only to commands whose function takes a
    ``rebuild`` parameter (and passes it on to :func:`pipeline.stage_runner.run_stage`),
    so a command is never handed an argument it does not accept.
    """
    options = [
        jobs_option,
        click.option("--skip-failures", is_flag=True,
                     help="Exit 0 even if some samples failed (they stay in the ledger)."),
        click.option("--retry-failures", is_flag=True,
                     help="Redo finished shards that recorded failed samples."),
        click.option("--overwrite", is_flag=True,
                     help="Delete a cache made with other settings and rebuild it (refused "
                          "while another process writes that cache)."),
        click.option("--no-progress", is_flag=True, help="Hide the progress bar."),
    ]
    if "rebuild" in inspect.signature(function).parameters:
        options.append(click.option(
            "--rebuild", is_flag=True,
            help="Delete this cache even if its settings match and build it again from "
                 "scratch. Rarely needed: shards made with other settings (--overwrite), "
                 "from input files or upstream shards changed since, or for another shard "
                 "plan are found and redone by a plain run. Refused while another process "
                 "writes that cache."))
    for option in reversed(options):
        function = option(function)
    return function


def user_errors_exit(function):
    """Print a user error as one clear line and exit 2, and a worker process killed from
    outside (e.g. by the out-of-memory killer) as one and exit 3, instead of a
    traceback."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except USER_ERRORS as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(USER_ERROR_EXIT)
        except WorkerDiedError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(RUN_STOPPED_EXIT)
    return wrapper


def report_and_exit(result, skip_failures: bool) -> None:
    """Print the stage summary and its failures; exit non-zero on failures."""
    click.echo(result.summary())
    if result.failures:
        shown = result.failures[:20]
        for failure in shown:
            click.echo(f"  failed {failure['id']}: {failure['reason']}", err=True)
        if len(result.failures) > len(shown):
            click.echo(f"  ... and {len(result.failures) - len(shown)} more", err=True)
        click.echo(f"failures ledger: {result.cache_path / 'failures.jsonl'}", err=True)
    code = result.exit_code(skip_failures)
    if code:
        click.echo("some samples failed; re-run with --skip-failures to accept that",
                   err=True)
    sys.exit(code)
