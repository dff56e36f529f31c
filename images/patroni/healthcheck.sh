#!/bin/sh
# Healthy when Patroni's REST API reports PostgreSQL running (GET /health answers 200).
exec curl -fsS -o /dev/null -m 4 "http://127.0.0.1:${PSN_PATRONI_API_PORT:-8008}/health"
