"""Where the tree is, for harness modules that name files in it (one place, not a
chain of dirname() per module)."""

import os

HARNESS = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HARNESS)
REPO = os.path.dirname(TESTS)
