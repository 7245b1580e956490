"""`python -m colliderflow` is the `colliderflow` command."""

import sys

from colliderflow.cli import main

sys.exit(main())
