import sys

from . import gc_pacing

gc_pacing.pace()

from .cli import main  # noqa: E402 - after the garbage collector is paced

code = main(sys.argv[1:])
gc_pacing.freeze_before_exit()
sys.exit(code)
