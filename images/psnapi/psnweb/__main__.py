"""`python3 -m psnweb api|admin|autoconfig`: run one service on port 8080 with uvicorn."""

from __future__ import annotations

import importlib
import sys

import uvicorn

from psnweb.config import ConfigError, load_config

SERVICES = {"api": "psnweb.api", "admin": "psnweb.admin", "autoconfig": "psnweb.autoconfig"}


def main(argv: list[str]) -> int:
    name = argv[0] if argv else "api"
    if name not in SERVICES:
        print(f"psnweb: unknown service {name!r}; one of {', '.join(SERVICES)}", file=sys.stderr)
        return 2
    try:
        app = importlib.import_module(SERVICES[name]).create_app(load_config())
    except ConfigError as exc:
        print(f"psnweb {name}: {exc}", file=sys.stderr)
        return 1
    # Behind psn-nginx-proxy_nginx: the client's address and scheme come from its headers.
    uvicorn.run(app, host="0.0.0.0", port=8080, proxy_headers=True, forwarded_allow_ips="*")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
