"""The installed version of modelcycle."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("modelcycle")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
