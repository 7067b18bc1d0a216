import sys

from nanoframe.cli import main

sys.exit(main())
