"""The one exception type users see: a message they can act on."""


class SeqlabError(Exception):
    """Bad input or an impossible request.

    The message names the file, field or flag, what was expected and what
    was found. The CLI prints it without a traceback and exits with status 2.
    """
