"""``python -m autopneumo``: the same CLI as the ``autopneumo`` command."""

from .cli import main

main()
