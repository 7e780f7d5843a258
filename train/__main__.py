"""``python -m train`` = the ``train`` command (also ``accelerate launch -m train``)."""

from train.cli.main import cli

if __name__ == "__main__":
    cli()
