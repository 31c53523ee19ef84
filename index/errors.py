"""Expected failures of the index layer; each message is one sentence that says the fix."""


class ArticlebotError(Exception):
    """An expected failure with a message meant for the user."""


class ArticleError(ArticlebotError):
    """An article is missing, unreadable or empty."""


class IndexMismatchError(ArticlebotError):
    """The saved index was built another way (model, dimension, format)."""


class IndexCorruptError(ArticlebotError):
    """The saved index cannot be read."""


class IndexLocationError(ArticlebotError):
    """The index folder holds files that are not an articlebot index."""


class IndexWriteError(ArticlebotError):
    """The index could not be saved (a full disk, no permission)."""


class FetchError(ArticlebotError):
    """A page or feed could not be fetched from the web, or is not one articlebot can read."""
