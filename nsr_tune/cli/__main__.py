import sys

from nsr_tune.cli import main

sys.exit(main())
