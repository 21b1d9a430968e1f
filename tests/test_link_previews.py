"""What an ad click's preview and a search result show of the landing page: a description
and Open Graph tags in the page's language, though the page cache keeps them rendered."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from .settings import PUBLIC_BASE_URL

#: Per language: og:locale, and the start of the description, og:title and og:description.
PREVIEWS = {
    "fi": (
        "fi_FI",
        "Tilaa Viihdepaketti.fi:n parhaat viihdetarjoukset tekstiviestillä.",
        "Tilaa parhaat viihdetarjouksemme tekstiviestillä",
        "Parhaat viihdetarjouksemme suoraan puhelimeesi.",
    ),
    "sv": (
        "sv_SE",
        "Få Viihdepaketti.fi:s bästa underhållningserbjudanden som textmeddelanden.",
        "Få våra bästa underhållningserbjudanden som textmeddelanden",
        "Våra bästa underhållningserbjudanden direkt till din telefon.",
    ),
    "en": (
        "en_GB",
        "Get Viihdepaketti.fi's best entertainment offers by text message.",
        "Get our best entertainment offers by text message",
        "Our best entertainment offers straight to your phone.",
    ),
}


class HeadTags(HTMLParser):
    """The <meta> tags of a page (name or property: [content, ...]) and its <link> tags."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.meta: dict[str, list[str]] = {}
        self.links: dict[str, list[str]] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "meta" and (found.get("name") or found.get("property")):
            key = found.get("name") or found.get("property")
            self.meta.setdefault(key, []).append(found.get("content") or "")
        elif tag == "link":
            self.links.setdefault(found.get("rel") or "", []).append(found.get("href") or "")


def preview_of(client, language: str) -> HeadTags:
    return HeadTags(client.get("/", headers={"Accept-Language": language}).text)


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_the_landing_page_preview_is_in_the_pages_language(client, language):
    """Rendered first in the other languages (so the page cache holds their texts), the
    preview still comes in this one, twice over."""
    for other in PREVIEWS:
        preview_of(client, other)
    og_locale, description, title, og_description = PREVIEWS[language]
    for _ in range(2):
        tags = preview_of(client, language)
        assert len(tags.meta["description"]) == 1  # the landing page's own, not the default
        assert tags.meta["description"][0].startswith(description)
        assert tags.meta["og:title"] == [title]
        assert tags.meta["og:description"][0].startswith(og_description)
        assert tags.meta["og:locale"] == [og_locale]
        assert tags.meta["og:type"] == ["website"]
        assert tags.meta["og:url"] == [f"{PUBLIC_BASE_URL}/"]
        assert tags.links["canonical"] == [f"{PUBLIC_BASE_URL}/"]


def test_the_preview_image_is_ours_and_there(client):
    """og:image is an absolute address on our own site, of a 1200 x 630 picture."""
    tags = preview_of(client, "fi")
    image = tags.meta["og:image"][0]
    assert image.startswith(f"{PUBLIC_BASE_URL}/static/")
    assert client.get(image.removeprefix(PUBLIC_BASE_URL)).mimetype == "image/png"
    assert (tags.meta["og:image:width"], tags.meta["og:image:height"]) == (["1200"], ["630"])
    assert tags.meta["og:image:alt"] == [
        "Viihdepaketti.fi:n logo: puhekupla, jossa on toistopainike"
    ]


def test_a_campaign_link_previews_the_same_page(client):
    """An ad's own parameters change neither the canonical address nor og:url."""
    tags = HeadTags(client.get("/?utm_source=meta&utm_campaign=joulu").text)
    assert tags.meta["og:url"] == [f"{PUBLIC_BASE_URL}/"]
    assert tags.links["canonical"] == [f"{PUBLIC_BASE_URL}/"]


@pytest.mark.parametrize(
    ("language", "description"),
    [
        ("fi", "Viihdepaketti.fi: viihdetarjouksia tekstiviestillä."),
        ("sv", "Viihdepaketti.fi: underhållningserbjudanden som textmeddelanden."),
        ("en", "Viihdepaketti.fi: entertainment offers by text message."),
    ],
)
def test_every_other_page_has_one_description_in_its_language(client, language, description):
    """Search results and Lighthouse want a description on every page; the rest share one."""
    for path in ("/privacy", "/staff/login", "/no-such-page"):
        tags = HeadTags(client.get(path, headers={"Accept-Language": language}).text)
        assert len(tags.meta["description"]) == 1, path
        assert tags.meta["description"][0].startswith(description), path
        assert "og:title" not in tags.meta, path
