"""``python -m medsora.data check ROOT`` — see :mod:`medsora.data.check`."""
from medsora.cli import run_cli
from medsora.data.check import main

raise SystemExit(run_cli(main, "medsora.data"))
