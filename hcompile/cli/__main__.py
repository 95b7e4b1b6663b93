import sys

from hcompile.cli import main

sys.exit(main())
