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



class OneLineErrorCommandMixin:
    """For a Django management command (``class Command(OneLineErrorCommandMixin, BaseCommand)``): a usage error
    on the command line is one line too; from ``call_command`` it stays Django's CommandError."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> argparse.ArgumentParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        django_error = parser.error

        def error(message: str) -> NoReturn:
            if getattr(parser, "called_from_command_line", False):
                OneLineErrorParser.error(parser, message)
            django_error(message)

        parser.error = error
        return parser
