"""Input a hostile or unlucky user sends, shared by the tests of each front end."""

from __future__ import annotations

# Within the 1,000-character limit, yet far over the reader's 256 wordpieces on their own: each
# once crashed the reader ("Truncation error: Second sequence not provided"). A Hangul word is up to
# three wordpieces a character, so no character count bounds wordpieces.
LONG_QUESTIONS = (
    "中" * 999,
    "Кто был уволен? " * 60,
    "who was fired by zyxqvw " + "qzxv " * 190,
    "누가 해임되었나? " * 100,
)
