"""The one exception type that reaches a user as a one-line message and exit status 2."""


class UserError(Exception):
    """Bad input: an unknown workload, a malformed target, an unsupported program, ..."""
