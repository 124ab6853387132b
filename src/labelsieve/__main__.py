import sys

from labelsieve.cli import main

sys.exit(main())
