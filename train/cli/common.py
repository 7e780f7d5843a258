"""Turning the trainer's user errors into one clear line and a non-zero exit."""

from __future__ import annotations

import functools
import sys

import click

from data_manifest.errors import DataError, MissingCacheError, StaleCacheError
from train.errors import TrainError

USER_ERRORS = (TrainError, DataError, MissingCacheError, StaleCacheError)


def user_errors_exit(function):
    """Print a user error as ``error: ...`` and exit 2; Ctrl-C exits 130 with a hint."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except USER_ERRORS as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; the last checkpoint is kept (rerun the same command "
                       "to resume)", err=True)
            sys.exit(130)
    return wrapper
