"""The one error type a user sees.

Every library error that is the user's to fix (bad input, bad config, a missing file or model) derives from
``UserError``. The command line prints it as one line, ``petid <command>: <message>``, and exits with status 2;
the Dagster assets let it fail the step with the same message. Anything else is a bug: the CLI still prints one
line (and the traceback only with ``PETID_DEBUG=1``).
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix. The message says what is wrong and what to do."""
