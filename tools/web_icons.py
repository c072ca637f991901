"""Draw the web app's icons (src/ferkit/apps/web/icon-192.png, icon-512.png): a smiling face on the
emotion colours, maskable (the face stays inside the middle 80%). Run once; the PNGs are committed."""

from pathlib import Path

from PIL import Image, ImageDraw

WEB = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "apps" / "web"
COLOURS = ["#dc2828", "#963cc8", "#fac800", "#3278dc", "#fa8c1e", "#a0a0a0"]


def icon(size: int) -> Image.Image:
    k = 4  # drawn at 4x, then shrunk: smooth edges
    s = size * k
    im = Image.new("RGB", (s, s), "#1b2030")
    d = ImageDraw.Draw(im)
    for i, c in enumerate(COLOURS):  # the strip of emotion colours along the bottom
        d.rectangle([i * s // len(COLOURS), s * 0.86, (i + 1) * s // len(COLOURS), s], fill=c)
    r = s * 0.3
    cx, cy = s / 2, s * 0.47
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill="#fac800")
    e = r * 0.12
    for ex in (cx - r * 0.38, cx + r * 0.38):
        d.ellipse([ex - e, cy - r * 0.3 - e, ex + e, cy - r * 0.3 + e], fill="#1b2030")
    d.arc([cx - r * 0.55, cy - r * 0.45, cx + r * 0.55, cy + r * 0.6], 20, 160, fill="#1b2030", width=int(r * 0.1))
    return im.resize((size, size), Image.LANCZOS)


if __name__ == "__main__":
    for size in (192, 512):
        icon(size).save(WEB / f"icon-{size}.png", optimize=True)
