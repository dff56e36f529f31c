"""The admin panel (service psn-frontend_web_admin): server-rendered pages over the PSN API."""

from psnweb.admin.app import create_app

__all__ = ["create_app"]
