import sys

from . import collector

collector.pace()

from .cli import main  # noqa: E402 - after the collector is paced

code = main(sys.argv[1:])
collector.freeze_before_exit()
sys.exit(code)
