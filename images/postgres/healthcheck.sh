#!/bin/sh
# Healthy when the server accepts connections and answers a query over the local socket
# (peer authentication as the image's postgres user); falls back to the wire-protocol
# probe pg_isready when a custom pg_hba.conf refuses peer logins.
if psql -h /var/run/postgresql -U postgres -d postgres -XtAc 'SELECT 1' 2>/dev/null | grep -qx 1; then
    exit 0
fi
exec pg_isready -q -h /var/run/postgresql -U postgres -d postgres
