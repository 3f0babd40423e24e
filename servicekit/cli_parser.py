"""The argument parser of every console script: a usage error is one line with the reason, exit 2.

argparse prints the whole usage block before its error, which in a log or a CI step is several lines for one
mistake; the usage stays one `--help` away, and the line says so.
"""

from __future__ import annotations

import argparse
from typing import NoReturn


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser (and its subcommands' parsers) whose errors read `prog: error: reason (see prog --help)`."""

    def error(self, message: str) -> NoReturn:
        reason = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {reason} (see {self.prog} --help)\n")

