"""Render the site's icons in static/icons/ from the master static/icons/icon.svg.

Run by hand after changing the master (`.venv/bin/python docs/icons.py`); the PNGs and
favicon.ico are committed, so nothing here is needed at run time. Debian's headless
Chromium (Playwright) draws the PNGs; favicon.ico packs the 16, 32 and 48 px PNGs (an ICO
may hold PNG images, and every current browser reads them).
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "static" / "icons"
MASTER = ICONS / "icon.svg"
BRAND = "#5b1fa6"  # --brand in static/css/site.css
FOCUS = "#ffbf47"  # --focus

#: File name: (size in px, background). iOS fills transparency with black and rounds the
#: corners itself, so its icon is drawn on the brand colour, edge to edge.
PNGS = {
    "icon-192.png": (192, None),
    "icon-512.png": (512, None),
    "apple-touch-icon.png": (180, BRAND),
}
ICO_SIZES = (16, 32, 48)
#: The link preview of an ad click (og:image): 1200 x 630 is what Facebook and others crop to.
OG_IMAGE = ("og-image.png", 1200, 630)


def svg_data_url() -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(MASTER.read_bytes()).decode()


def render(page: Page, html: str, width: int, height: int) -> bytes:
    """A PNG of ``html`` at exactly width x height CSS px (1 device px each)."""
    page.set_viewport_size({"width": width, "height": height})
    page.set_content(f"<!doctype html><body style='margin:0'>{html}</body>")
    page.wait_for_load_state("load")
    clip = {"x": 0, "y": 0, "width": width, "height": height}
    return page.screenshot(clip=clip, omit_background=True, type="png")


def icon_png(page: Page, size: int, background: str | None) -> bytes:
    fill = f"background:{background};" if background else ""
    html = (
        f"<div style='{fill}width:{size}px;height:{size}px'>"
        f"<img src='{svg_data_url()}' width='{size}' height='{size}' style='display:block'></div>"
    )
    return render(page, html, size, size)


def og_image_png(page: Page, width: int, height: int) -> bytes:
    """The brand colour, the icon's bubble and the wordmark (no text to translate)."""
    html = (
        f"<div style='width:{width}px;height:{height}px;background:{BRAND};display:flex;"
        "align-items:center;justify-content:center;gap:40px;color:#fff;"
        "font:700 92px Liberation Sans,Arial,sans-serif'>"
        f"<img src='{svg_data_url()}' width='260' height='260'>"
        f"<div>Viihdepaketti.fi<div style='height:12px;width:220px;margin-top:24px;"
        f"background:{FOCUS};border-radius:6px'></div></div></div>"
    )
    return render(page, html, width, height)


def ico(pngs: list[tuple[int, bytes]]) -> bytes:
    """An ICO file holding the given PNG images (ICONDIR, one ICONDIRENTRY each, the data)."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = len(header) + 16 * len(pngs)
    entries, data = b"", b""
    for size, png in pngs:
        # Width and height 0 mean 256; 1 plane, 32 bits a pixel, then length and offset.
        entries += struct.pack(
            "<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(png), offset + len(data)
        )
        data += png
    return header + entries + data


def write(name: str, content: bytes) -> None:
    (ICONS / name).write_bytes(content)
    print(f"static/icons/{name} ({len(content)} bytes)")


def main() -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(device_scale_factor=1)
        for name, (size, background) in PNGS.items():
            write(name, icon_png(page, size, background))
        write("favicon.ico", ico([(size, icon_png(page, size, None)) for size in ICO_SIZES]))
        name, width, height = OG_IMAGE
        write(name, og_image_png(page, width, height))
        browser.close()


if __name__ == "__main__":
    main()
