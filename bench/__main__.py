"""`python -m bench` (the burst benchmark), `python -m bench crash-rounds` (bench/crash.py)."""

import sys

if sys.argv[1:2] == ["crash-rounds"]:
    from bench.crash import main as crash_rounds

    sys.exit(crash_rounds(sys.argv[2:]))

from bench.run import main

sys.exit(main())
