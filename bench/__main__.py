"""`python -m bench` and its phases (`slow`, `sigterm`, `soak`, `crash-rounds`): bench/run.py."""

import sys

from bench.run import main

sys.exit(main())
