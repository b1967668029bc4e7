"""Errors that reach the user as one line and exit status 2."""


class UserError(Exception):
    """Bad input from the user: an unreadable file, a wrong config value, missing weights.

    The command line prints ``musegansynth: error: <message>`` on one line and exits with
    status 2. The message should name the file or key and the problem.
    """
