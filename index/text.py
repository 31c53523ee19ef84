"""Text as every article holds it, whether read from a file or extracted from a web page."""

from __future__ import annotations

import re
import unicodedata

# Control characters other than tab and newline (terminal escapes such as ESC]0; or ESC[2J) are
# dropped on reading, so no front end can pass them on.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(raw: str) -> str:
    """Unix line ends, composed Unicode (NFC), and no control characters but tab and newline."""
    text = unicodedata.normalize("NFC", raw.replace("\r\n", "\n").replace("\r", "\n"))
    return _CONTROL.sub("", text)
