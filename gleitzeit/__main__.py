import sys

from gleitzeit.cli import main

sys.exit(main())
