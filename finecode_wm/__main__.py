"""`python -m finecode_wm` is `finecode-wm`."""

from .main import main

main()
