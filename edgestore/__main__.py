"""`python -m edgestore` is the `edgestore` command."""

import sys

from edgestore.cli.main import main

sys.exit(main())
