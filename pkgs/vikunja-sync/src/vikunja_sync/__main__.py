import sys

from vikunja_sync.cli import main

sys.exit(main())
