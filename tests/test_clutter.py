"""In-article clutter: one news page per kind, marked as real news sites mark it, and none of it may
reach the article, extracted or stored; the article's own paragraphs all do.

Each page is the same five-paragraph story with one block of clutter between its second and third
paragraphs, and a last paragraph that mentions an advertisement (which stays).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from news_site import NewsSite

from index.web.clutter import CAPTION, CLUTTER, marking
from index.web.extract import extract_html
from index.web.ingest import ADDED, ArticleFolder

TITLE = "Tram loop to close for three weeks"
PARAGRAPHS = (
    "The city's tram network will close for three weeks in August while engineers replace the "
    "overhead lines on the northern loop, the transport authority said on Tuesday.",
    "About 40,000 people ride the northern loop on a weekday. Replacement buses will run every six "
    "minutes at peak times, and the authority has hired 120 extra drivers from two private operators.",
    "The work was planned for last summer but was put off after the contractor, Halvorsen Rail, went "
    "into administration. A new contractor was appointed in March at a cost of 18 million pounds.",
    "Shopkeepers on Canal Street, where the loop runs closest to the market, said they feared losing "
    "trade. The traders' association has asked the council to cut parking charges while the trams are away.",
    "The authority said the lines date from 1987 and that two failures last winter stranded passengers "
    "for hours. It expects the northern loop to reopen on the first Monday of September.",
    # Mentions an advertisement, and is the article's own: it stays.
    "The traders' association paid for a full-page advertisement in Saturday's Gazette asking shoppers "
    "to keep coming to the market while the trams are away.",
)


@dataclass(frozen=True)
class Clutter:
    kind: str
    html: str  # what the page puts between the second and third paragraphs
    words: tuple[str, ...]  # none of these may reach the article


KINDS = (
    Clutter(
        "ad by class",  # the block first reported: kept until this was built
        '<div class="ad"><p>Advertisement: Summer ferry sale, save 20% on every crossing booked before '
        "Friday.</p></div>",
        ("Advertisement", "ferry sale"),
    ),
    Clutter(
        "ads by id",
        '<div id="ads-inline-2" class="slot"><p>Brightwater Kitchens: fitted kitchens from 2,999 pounds, '
        "installed in a week.</p></div>",
        ("Brightwater",),
    ),
    Clutter(
        "advert by class, BEM style",
        '<div class="advert advert--inline"><p>Holiday homes on the coast from 89 pounds a night with '
        "Seaview Lets.</p></div>",
        ("Seaview",),
    ),
    Clutter(
        "ad slot by a data attribute",
        '<div data-ad-slot="mid-article-1"><p>Compare energy tariffs in two minutes and switch today with '
        "PowerSwitch.</p></div>",
        ("PowerSwitch",),
    ),
    Clutter(
        "advertisement by aria-label",
        '<section aria-label="Advertisement"><p>Upgrade your broadband to full fibre with Lumen Net from '
        "this month.</p></section>",
        ("Lumen Net",),
    ),
    Clutter(
        "sponsored content",
        '<div class="sponsored-content"><h4>Sponsored</h4><p>Five reasons retirees are moving to '
        "Lakeside Gardens this spring.</p></div>",
        ("Sponsored", "Lakeside Gardens"),
    ),
    Clutter(
        "promotion",
        '<div class="inline-promo"><p>Read without limits: subscribe to the Gazette for one pound a '
        "week.</p></div>",
        ("Read without limits",),
    ),
    Clutter(
        "related stories",
        '<div class="story-rail" data-component="related-stories"><h3>Related</h3><ul>'
        '<li><a href="/a">Bus lanes to be extended on the ring road</a></li>'
        '<li><a href="/b">Council approves new cycle bridge</a></li></ul></div>',
        ("Related", "Bus lanes", "cycle bridge"),
    ),
    Clutter(
        "most read",
        '<div id="mostRead"><h3>Most read</h3><ol>'
        "<li>Lifeboat crew rescues two walkers cut off by the tide near the lighthouse</li>"
        "<li>Seafront hotel sold to developers after forty years in one family</li></ol></div>",
        ("Most read", "Lifeboat", "Seafront hotel"),
    ),
    Clutter(
        "recommended",
        '<div data-testid="recommended-for-you"><p>You may also like</p><p>The best bakeries in the old '
        "town, chosen by our readers over the summer.</p></div>",
        ("You may also like", "bakeries"),
    ),
    Clutter(
        "newsletter box",
        '<div data-module="NewsletterSignup"><p>Get the Morning Briefing in your inbox every weekday. '
        "Sign up with your email address.</p></div>",
        ("Morning Briefing", "Sign up"),
    ),
    Clutter(
        "share bar",
        '<div class="story-tools" aria-label="Share this article"><p>Send this story to a friend who rides '
        'the trams: <a href="/f">Facebook</a> <a href="/g">Email</a></p></div>',
        ("Send this story", "Facebook"),
    ),
    Clutter(
        "image caption and credit",
        '<figure><img src="lines.jpg" alt=""><figcaption>Engineers inspect the overhead lines near Canal '
        'Street. <span class="credit">Photograph: Anna Kowalski/City Gazette</span></figcaption></figure>'
        '<p class="image-credit">Pictures by the Gazette photo desk, all rights reserved</p>',
        ("Engineers inspect", "Kowalski", "photo desk"),
    ),
    Clutter(
        "a sidebar by role",
        '<div role="complementary"><p>What the closure means for school journeys, and how to plan yours '
        "before term starts.</p></div>",
        ("school journeys",),
    ),
    Clutter(
        "related teasers, each a link with its summary",  # paragraphs of 20 words and more, all inside links
        '<div class="related-coverage"><a href="/c"><p>Night buses: the council says every route into '
        "the city centre will run through the night for the three weeks the trams are away this "
        'summer.</p></a><a href="/d"><p>Canal Street market: traders count the cost of the last closure, '
        "when takings fell by a third in a fortnight and two stalls did not reopen.</p></a></div>",
        ("Night buses", "takings fell"),
    ),
    Clutter(
        "a promotion in two paragraphs",  # 41 words of prose, under the 50 that make a section
        '<div class="promo-box"><p>Gazette members read every story on any device, with no limits and no '
        "adverts, and get the weekend magazine delivered.</p><p>Join this week and the first three months "
        "cost one pound, then five pounds a month after that. Cancel any time.</p></div>",
        ("Gazette members", "Cancel any time"),
    ),
    Clutter(
        "label paragraphs",
        "<p>ADVERTISEMENT</p><p>Story continues below advertisement</p>",
        ("ADVERTISEMENT", "continues below"),
    ),
)


def news_page(clutter: str, *, body_attributes: str = 'class="article-body"') -> str:
    paragraphs = "".join(f"<p>{text}</p>" + (clutter if n == 1 else "") for n, text in enumerate(PARAGRAPHS))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{TITLE} | City Gazette</title></head>"
        "<body><header><nav><a href='/'>Home</a> <a href='/transport'>Transport</a></nav></header>"
        f"<main><article><h1>{TITLE}</h1><div {body_attributes}>{paragraphs}</div></article></main>"
        "<footer><p>City Gazette, 4 Quay Street. All rights reserved.</p></footer></body></html>"
    )


@pytest.mark.parametrize("clutter", KINDS, ids=lambda clutter: clutter.kind)
def test_clutter_is_left_out_of_the_article(clutter: Clutter) -> None:
    article = extract_html(news_page(clutter.html))
    for word in clutter.words:
        assert word not in article.text, word
    assert article.text.split("\n\n") == list(PARAGRAPHS)


def test_no_clutter_reaches_a_stored_article(news_site: NewsSite, tmp_path: Path) -> None:
    for n, clutter in enumerate(KINDS):
        url = news_site.route(f"/transport/tram-{n}", news_page(clutter.html))
        # A folder each: every page holds the same story, and a folder keeps one copy of a text.
        with ArticleFolder(tmp_path / f"news-{n}", allow_private=True) as folder:
            [outcome] = folder.add([url])
        assert outcome.status == ADDED and outcome.path is not None, (clutter.kind, outcome.line())
        body = outcome.path.read_text(encoding="utf-8").partition("\n\n")[2]
        for word in clutter.words:
            assert word not in body, (clutter.kind, word)
        assert body.strip().split("\n\n") == list(PARAGRAPHS), clutter.kind


def test_an_article_body_marked_with_ad_words_is_kept() -> None:
    """Sites mark the article itself for their ad server; it is never taken for an ad."""
    marked = 'class="article-body has-ads" data-ad-targeting="transport" aria-label="Story, with ads"'
    article = extract_html(news_page(KINDS[0].html, body_attributes=marked))
    assert article.text.split("\n\n") == list(PARAGRAPHS)
    wrapped = news_page("").replace("<main>", "<div class='layout-with-sidebar ad-rail'><main>")
    assert extract_html(wrapped).text.split("\n\n") == list(PARAGRAPHS)


def test_paragraphs_that_mention_ads_or_photos_stay() -> None:
    own = (
        "Advertisement boards along Canal Street will be taken down while the lines are replaced.",
        "The Photographic Society said its members would record the last tram to leave the depot.",
        "Sponsors of the summer festival said they would pay for extra buses on its closing night.",
    )
    html = news_page("".join(f"<p>{text}</p>" for text in own))
    blocks = extract_html(html).text.split("\n\n")
    assert blocks == [*PARAGRAPHS[:2], *own, *PARAGRAPHS[2:]]


@pytest.mark.parametrize(
    ("value", "marked"),
    [
        ("ad", CLUTTER),
        ("ad-slot", CLUTTER),
        ("adSlot", CLUTTER),
        ("ad_slot", CLUTTER),
        ("AdContainer--standalone", CLUTTER),
        ("dfp-ad--inline1", CLUTTER),
        ("js-advert", CLUTTER),
        ("mostRead", CLUTTER),
        ("most-popular-list", CLUTTER),
        ("NewsletterSignup", CLUTTER),
        ("you-may-also-like", CLUTTER),
        ("Share this article", CLUTTER),
        ("image-credit", CLUTTER),
        ("photoCaption", CLUTTER),
        ("credit", CAPTION),  # a caption's word alone: clutter only inside a <figure>
        ("caption-s5-fx", CAPTION),
        ("header", None),
        ("shared-layout", None),
        ("loading", None),
        ("badge", None),
        ("download-link", None),
        ("article-body", None),
        ("readMore", None),
        ("most-recent", None),
    ],
)
def test_a_word_marks_clutter_only_whole(value: str, marked: str | None) -> None:
    assert marking(value) == marked


def test_type_styles_named_caption_and_ad_abbreviations_stay() -> None:
    """Design systems name type styles "caption"; an <abbr>AD</abbr> is part of its sentence."""
    lead = (
        '<h2 class="standfirst caption-s5-fx">Engineers will work through the night on the northern loop, '
        "the authority said.</h2>"
    )
    html = news_page("").replace("<p>About 40,000", "<p>In 2019 <abbr>AD</abbr> rules applied. About 40,000")
    html = html.replace('<div class="article-body">', '<div class="article-body">' + lead)
    blocks = extract_html(html).text.split("\n\n")
    assert blocks[0] == "Engineers will work through the night on the northern loop, the authority said."
    assert blocks[2].startswith("In 2019 AD rules applied. About 40,000")


def test_a_section_of_the_article_marked_as_holding_ads_stays() -> None:
    """A site marks the sections of its article that have an ad inside (chip.de's
    `TestReport__Section--Ads`): fifty words of prose outside links are article, whatever its name."""
    sections = "".join(
        f'<section class="Report__Section Report__Section--Ads"><p>{a}</p><p>{b}</p></section>'
        for a, b in (PARAGRAPHS[:2], PARAGRAPHS[2:4], PARAGRAPHS[4:6])
    )
    html = news_page("").replace(
        "".join(f"<p>{text}</p>" for text in PARAGRAPHS),
        sections + '<div class="ad"><p>Buy tickets.</p></div>',
    )
    assert extract_html(html).text.split("\n\n") == list(PARAGRAPHS)
