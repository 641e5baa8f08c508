"""What the project's command lines share: the help formatter.

Every flag's default is shown in ``--help``, except a flag whose default is None: its
help text says what leaving it out means, and "(default: None)" would only confuse.
"""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)
