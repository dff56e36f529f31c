#!/bin/sh
# psnweb SERVICE: run one of the image's web services (api, admin, autoconfig) on port 8080.
PYTHONPATH=/usr/lib/psnweb
export PYTHONPATH
exec python3 -m psnweb "$@"
