"""``python -m gossipsim`` = the ``gossipsim`` command."""

import sys

from gossipsim.cli import main

sys.exit(main())
