"""`python -m indexer` is `audifi-indexer`."""

from indexer.cli import main

main()
