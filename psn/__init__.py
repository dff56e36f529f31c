"""PSN: installer for an enterprise mail suite on Docker Swarm."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("psn")
except PackageNotFoundError:  # running from a tree that was not pip-installed
    __version__ = "0.0.0"
