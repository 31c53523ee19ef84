"""In-article clutter, found by how news pages mark it and dropped before the article is extracted.

trafilatura drops a page's menus, footers and comments, but inside the article body it keeps
what its own patterns miss: `<div class="ad">`, a box marked only by `aria-label="Advertisement"`
or `data-ad-slot`, a promotion, a "recommended" list, a newsletter box, a lone "ADVERTISEMENT"
line. Each would be saved as a sentence of the article and could be quoted as an answer.

An element is clutter when its class, id, `aria-label`, a `data-*` attribute or its ARIA role
marks it so: the attribute is cut into words ("adSlot", "ad-slot" and "ad_slot" are all "ad" and
"slot") and a word is looked up whole, so "header" or "shared-layout" never reads as "ad" or
"share". So is a short element whose whole text is a label ("Advertisement", "Story continues
below advertisement"), or a short paragraph opening with one ("Advertisement: …", "Photo: …").
A paragraph that only mentions an advertisement is kept.

A page can mark its whole article with such words (`<div class="article-body has-ads">`,
`data-ad-targeting` on the article): an element holding the headline, the article or half of the
page's paragraph text is never dropped, whatever it is marked with.
"""

from __future__ import annotations

import re
from itertools import islice, pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxml.html import HtmlElement

# Words of a class, id, aria-label or data-* attribute that mark an element as clutter, looked up
# whole. Ads (and the ad networks' own names), promotions, lists of other stories, newsletter
# boxes, share bars, and image captions and credits.
_MARKING_WORDS = frozenset(
    {
        *("ad", "ads", "adslot", "adunit", "adbox", "adcontainer", "adwrapper", "adzone", "dfp"),
        *("advert", "adverts", "advertisement", "advertisements", "advertising", "advertorial"),
        *("outbrain", "taboola", "sponsor", "sponsors", "sponsored", "sponsorship"),
        *("promo", "promos", "promoted", "promotion", "promotions", "promotional"),
        *("related", "recommended", "recommendation", "recommendations", "recirculation", "recirc"),
        *("trending", "mostread", "mostpopular", "mostviewed"),
        *("newsletter", "newsletters", "signup"),
        *("share", "shares", "sharing", "sharebar", "sharetools", "sharelinks", "social"),
    }
)
# Words that mark an image's caption or credit, but only beside a word for the image ("image-credit",
# "photoCaption") or inside a <figure>: alone, design systems use them for type styles ("caption-s5").
_CAPTION_WORDS = frozenset({"caption", "captions", "credit", "credits", "figcaption"})
_IMAGE_WORDS = frozenset({"image", "img", "photo", "picture", "pic", "media", "figure", "gallery", "video"})
# Two words that mark an element only together ("most-read", "mostRead", "you-may-also-like").
_MARKING_PAIRS = frozenset(
    {("most", "read"), ("most", "popular"), ("most", "viewed"), ("most", "shared"), ("also", "like")}
)
# ARIA landmarks that are not the article: a sidebar inside it (complementary), or the page's own
# header, footer and navigation.
_CLUTTER_ROLES = frozenset({"complementary", "banner", "contentinfo", "navigation"})
_ALWAYS_CLUTTER_TAGS = frozenset({"figcaption"})
# A data-* value is read for words only when it is a short name ("related-stories"), not a URL,
# JSON or a sentence.
_NAME_VALUE = re.compile(r"^[A-Za-z][\w\s-]{0,59}$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9]+")

# Block elements whose whole text may be a label; inline ones (an <abbr>AD</abbr>) belong to a sentence.
_LABEL_TAGS = frozenset({"p", "div", "section", "aside", "li", "h2", "h3", "h4", "h5", "h6", "figure"})
# The whole text of an element that is only a label (compared in lower case, without punctuation).
_LABELS = frozenset(
    {
        *("ad", "ads", "advert", "advertisement", "advertisements", "sponsored", "sponsored content"),
        *("paid content", "paid post", "promoted", "promoted content", "partner content"),
        *("story continues below", "story continues below advertisement", "article continues below"),
        *("article continues below advertisement", "continue reading below", "content continues below"),
        *("advertisement continue reading below", "continue reading the main story"),
        *("advertisement continue reading the main story", "scroll to continue with content"),
        *("advertisement scroll to continue", "skip advertisement"),
        *("related", "related stories", "related articles", "related content", "related coverage"),
        *("more on this story", "most read", "most popular", "recommended", "recommended for you"),
        *("you may also like", "you might also like", "share", "share this", "share this article"),
        *("share this story", "sign up", "sign up to our newsletter", "subscribe to our newsletter"),
    }
)
# A short paragraph that opens with one of these labels and a colon is the ad, or the credit, itself.
_LABEL_OPENING = re.compile(
    r"^\s*(?:advertisement|advert|sponsored(?: content)?|promoted|paid content|"
    r"photo(?:graph)?|picture|image|(?:photo |image )?credit)\s*:",
    re.IGNORECASE,
)
_LABEL_PARAGRAPH_WORDS = 40
# Elements whose whole text is looked at for a label: those with a few descendants at most, so a
# page of 100,000 nested elements costs no more than one pass.
_LABEL_DESCENDANTS = 4
# The element that holds the page's main text is never dropped: one holding at least this share
# of the words in the page's paragraphs, or this many words of prose, outside links and scripts (a
# section of the article its site marks as holding an ad, `TestReport__Section--Ads`). An ad, a
# promotion or a newsletter box says what it has to say in a few dozen words, and the lists of
# other stories are links.
_MAIN_TEXT_SHARE = 0.5
_PROSE_WORDS = 50
_NOT_PROSE = frozenset({"a", "script", "style", "noscript", "template"})
_ARTICLE_XPATH = (
    ".//h1 | .//article | .//main | .//*[@itemprop='articleBody' or @role='main' or @role='article']"
)


def drop_clutter(tree: HtmlElement) -> int:
    """Remove the clutter from a parsed page in place; returns how many elements went."""
    page_words = sum(_word_count(paragraph) for paragraph in tree.iter("p"))
    doomed: list[HtmlElement] = []
    pending = [tree]
    while pending:  # top down: a doomed element's descendants are not looked at
        element = pending.pop()
        if element is not tree and _is_clutter(element) and not _holds_the_article(element, page_words):
            doomed.append(element)
            continue
        pending.extend(child for child in reversed(element) if isinstance(child.tag, str))
    for element in doomed:
        element.drop_tree()  # its tail text stays, joined to what came before it
    return len(doomed)


CLUTTER, CAPTION = "clutter", "caption"


def _is_clutter(element: HtmlElement) -> bool:
    if element.tag in _ALWAYS_CLUTTER_TAGS:
        return True
    attributes = element.attrib
    if attributes.get("role", "").strip().lower() in _CLUTTER_ROLES:
        return True
    for name, value in attributes.items():
        if name in ("class", "id", "aria-label"):
            marked = marking(value)
        elif name.startswith("data-"):
            marked = marking(name[5:]) or (marking(value) if _NAME_VALUE.match(value) else None)
        else:
            continue
        if marked == CLUTTER or (marked == CAPTION and _in_figure(element)):
            return True
    return element.tag in _LABEL_TAGS and _is_label(element)


def marking(value: str) -> str | None:
    """What an attribute's words mark: CLUTTER; CAPTION for a caption's or credit's word without a
    word for the image (clutter only inside a <figure>); or None."""
    words = _WORD.findall(_CAMEL.sub(" ", value).lower())
    if not _MARKING_WORDS.isdisjoint(words) or any(pair in _MARKING_PAIRS for pair in pairwise(words)):
        return CLUTTER
    if _CAPTION_WORDS.isdisjoint(words):
        return None
    return CLUTTER if not _IMAGE_WORDS.isdisjoint(words) else CAPTION


def _in_figure(element: HtmlElement) -> bool:
    return any(ancestor.tag == "figure" for ancestor in element.iterancestors())


def _is_label(element: HtmlElement) -> bool:
    """A short element whose text is only a label, or a short paragraph opening with one."""
    if next(islice(element.iterdescendants(), _LABEL_DESCENDANTS, None), None) is not None:
        return False
    text = element.text_content()
    if not text.strip():
        return False
    if " ".join(_WORD.findall(text.lower())) in _LABELS:
        return True
    return len(text.split()) <= _LABEL_PARAGRAPH_WORDS and _LABEL_OPENING.match(text) is not None


def _holds_the_article(element: HtmlElement, page_words: int) -> bool:
    if element.tag in ("html", "body", "main", "article", "h1") or element.xpath(_ARTICLE_XPATH):
        return True
    if _prose_words(element) >= _PROSE_WORDS:
        return True
    words = sum(_word_count(paragraph) for paragraph in element.iter("p"))
    return page_words > 0 and words >= _MAIN_TEXT_SHARE * page_words


def _prose_words(element: HtmlElement) -> int:
    """Words of the element's own text and its descendants', links and scripts left out."""
    count = 0
    pending = [element]
    while pending:
        node = pending.pop()
        if node is not element and node.tail:
            count += len(node.tail.split())  # a link's tail is the sentence going on after it
        if isinstance(node.tag, str) and node.tag not in _NOT_PROSE:
            count += len((node.text or "").split())
            pending.extend(node)
    return count


def _word_count(element: HtmlElement) -> int:
    return len(element.text_content().split())
