"""``python -m focalbench`` is the ``focalbench`` command."""

from focalbench.cli import main

main()
