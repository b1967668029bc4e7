"""Errors that reach the user as one line and exit status 2."""


class UserError(Exception):
    """Bad input from the user: an unreadable file, a wrong config value, missing weights.

    The command line prints ``musegansynth: error: <message>`` on one line and exits with
    status 2. The message should name the file or key and the problem.
    """


def is_whole(value) -> bool:
    """True for a whole number (a Python or numpy integer, not a bool): JSON cards' and options' counts."""
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_seed(seed) -> int:
    """``--seed``: a whole number from 0 to 2**31 - 1, as ``musegansynth generate`` requires; UserError
    otherwise."""
    if not is_whole(seed) or not 0 <= seed < 2**31:
        raise UserError(f"--seed {seed}: must be 0 to {2**31 - 1}")
    return int(seed)
