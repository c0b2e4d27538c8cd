"""``python -m gossipsim`` = the ``gossipsim`` command."""

from gossipsim.cli import entry

entry()
