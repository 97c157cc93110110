"""hh-opsbot: the chat-ops hub of the Hyper Hash Network."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hh-opsbot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
