import sys

from coin_sync.cli import main

sys.exit(main(sys.argv[1:]))
