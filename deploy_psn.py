#!/usr/bin/env python3
"""Run `deploy_psn` from the installer directory without installing the package.

`./deploy_psn.sh` is the usual entry (it prepares a virtualenv); this file serves operators who
manage Python packages themselves: `python3 deploy_psn.py validate inventory/hosts.yml`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from psn.cli import main

if __name__ == "__main__":
    main()
