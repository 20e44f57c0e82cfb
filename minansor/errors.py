"""The two exception types that reach a user as one line: bad input (exit status 2) and a tuning
run that ended without a valid program (exit status 1, its records kept)."""


class UserError(Exception):
    """Bad input: an unknown workload, a malformed target, an unsupported program, ..."""


class NoValidProgram(Exception):
    """A tuner measured its whole budget and not one candidate built, ran and finished."""
