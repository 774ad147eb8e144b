"""`python -m finecode_wm` is `finecode-wm`."""

from .cli import main

main()
