#!/bin/bash
# Healthy when syslog-ng answers on its control socket and accepts a TCP connection on its
# syslog port (nothing is logged by the check).
syslog-ng-ctl stats >/dev/null 2>&1 || { echo "syslog-ng-ctl does not answer" >&2; exit 1; }
exec 3<>"/dev/tcp/127.0.0.1/${PSN_SYSLOG_PORT:-514}" || exit 1
exec 3>&-
