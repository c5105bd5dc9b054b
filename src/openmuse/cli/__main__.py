"""``python -m openmuse.cli``: the same as the ``muse`` command."""

from . import main

main()
