#!/bin/sh
# Healthy when nginx answers HTTP 200 on its loopback health endpoint.
exec curl -fsS -o /dev/null -m 4 "http://127.0.0.1:${PSN_HEALTH_PORT:-8099}/healthz"
