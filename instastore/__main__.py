import sys

from instastore.cli import main

sys.exit(main())
