#!/bin/sh
# Healthy when glusterd answers the CLI over its management protocol (port 24007).
exec timeout 8 gluster --mode=script pool list >/dev/null
