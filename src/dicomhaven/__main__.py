import sys

from dicomhaven.cli import main

sys.exit(main())
