"""``python -m medsora.data check ROOT`` — see :mod:`medsora.data.check`."""
from medsora.data.check import main

raise SystemExit(main())
