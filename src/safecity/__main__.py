"""``python -m safecity``: the same as the ``safecity`` command."""

from safecity.cli import main

main()
