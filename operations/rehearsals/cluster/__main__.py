"""``python -m operations.rehearsals.cluster``: the cluster rehearsal."""

import sys

from operations.rehearsals.cluster.run import main

sys.exit(main())
