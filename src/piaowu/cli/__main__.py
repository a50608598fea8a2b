import sys

from piaowu.cli.main import main

sys.exit(main())
