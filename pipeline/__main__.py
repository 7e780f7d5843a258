"""``python -m pipeline`` = the ``pipeline`` command (also ``accelerate launch -m pipeline``)."""

from pipeline.cli.main import cli

if __name__ == "__main__":
    cli()
