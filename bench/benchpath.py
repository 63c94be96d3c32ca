"""Imported first by every bench script: this checkout and its test harness
(tests/harness, as the package `harness`) on sys.path, whatever the working directory."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (os.path.join(ROOT, "tests"), ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)
