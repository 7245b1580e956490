"""colliderflow: from collider event simulation to trained, evaluated machine-learning models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("colliderflow")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
