"""`python -m scalepy.cli`: the `scalepy` command."""

import sys

from scalepy.cli import main

sys.exit(main())
