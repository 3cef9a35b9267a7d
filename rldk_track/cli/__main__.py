import sys

from rldk_track.cli import main

sys.exit(main())
