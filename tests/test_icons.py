"""The icons browsers and phones ask for: at the root where they look, and what pages link."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "static" / "icons"
ONE_YEAR = "max-age=31536000"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    return struct.unpack(">II", data[16:24])


def ico_sizes(data: bytes) -> list[int]:
    """The pixel sizes of the images in an ICO file (0 in the directory means 256)."""
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    assert (reserved, kind) == (0, 1), "not an ICO"
    return [data[6 + 16 * i] or 256 for i in range(count)]


@pytest.mark.parametrize(
    ("path", "file", "mimetype"),
    [
        ("/favicon.ico", "favicon.ico", "image/vnd.microsoft.icon"),
        ("/apple-touch-icon.png", "apple-touch-icon.png", "image/png"),
        ("/apple-touch-icon-precomposed.png", "apple-touch-icon.png", "image/png"),
    ],
)
def test_the_icons_asked_for_at_the_root_are_there_cached_for_a_year(client, path, file, mimetype):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.data == (ICONS / file).read_bytes()
    assert "public" in response.headers["Cache-Control"]
    assert ONE_YEAR in response.headers["Cache-Control"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in response.headers  # an icon starts no session


def test_the_icon_files_have_the_sizes_their_names_promise():
    assert ico_sizes((ICONS / "favicon.ico").read_bytes()) == [16, 32, 48]
    assert png_size((ICONS / "apple-touch-icon.png").read_bytes()) == (180, 180)
    assert png_size((ICONS / "icon-192.png").read_bytes()) == (192, 192)
    assert png_size((ICONS / "icon-512.png").read_bytes()) == (512, 512)
    assert png_size((ICONS / "og-image.png").read_bytes()) == (1200, 630)
    assert (ICONS / "icon.svg").read_text().startswith("<svg")


@pytest.mark.parametrize("path", ["/", "/privacy", "/staff/login", "/no-such-page"])
def test_every_icon_a_page_links_is_there(client, path):
    """Each page (an error page too) links the tab icons and the touch icon, none a 404."""
    page = client.get(path).text
    links = dict(re.findall(r'<link rel="(icon|apple-touch-icon)" href="([^"]+)"', page))
    assert set(links) == {"icon", "apple-touch-icon"}
    for href in re.findall(r'<link rel="(?:icon|apple-touch-icon)" href="([^"]+)"', page):
        response = client.get(href)
        assert response.status_code == 200, href
        assert response.mimetype.startswith("image/"), href
