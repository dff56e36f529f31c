#!/bin/sh
# Healthy when HAProxy answers HTTP 200 on its monitor URI.
exec curl -fsS -o /dev/null -m 4 "http://127.0.0.1:${PSN_HEALTH_PORT:-8404}/healthz"
