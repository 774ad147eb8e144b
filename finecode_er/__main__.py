"""`python -m finecode_er`: start a runner speaking JSON-RPC on stdin/stdout."""

from .runner import main

main()
