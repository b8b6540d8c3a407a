import sys

from dsd_gym.cli import main

sys.exit(main())
