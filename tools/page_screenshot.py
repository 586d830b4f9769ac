"""Make the README's screenshot of ``mlpcli page``: the page of a checkpoint, opened from disk in
headless Chromium, with a digit drawn on it by real mouse events.

    python tools/page_screenshot.py CKPT docs/page.png [--examples N] [--width PX]

Needs what the page tests need (Debian's chromium and chromium-driver, selenium) and Pillow.
The screenshot is reduced to a 64-colour palette so that it stays small (< 200 KB).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from mlpcli import page  # noqa: E402
from test_page import draw, start_chromium  # noqa: E402  (one definition of both, shared with the tests)


def three() -> list[list[tuple[float, float]]]:
    """A handwritten-looking 3 on the 280×280 pad: two bowls in one stroke."""
    upper = [(135 + 50 * np.cos(t), 88 + 42 * np.sin(t)) for t in np.linspace(-0.85 * np.pi, 0.5 * np.pi, 16)]
    lower = [(140 + 58 * np.cos(t), 183 + 52 * np.sin(t)) for t in np.linspace(-0.5 * np.pi, 0.85 * np.pi, 18)]
    return [upper + lower]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--examples", type=int, default=None)
    parser.add_argument("--width", type=int, default=1200)
    args = parser.parse_args()
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "page.html"
        result = page.write_page(args.checkpoint, html, args.examples)
        driver = start_chromium(Path(tmp) / "profile", size=(args.width, 900))
        try:
            driver.get(html.as_uri())
            draw(driver, three())
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(args.width, height + 20)
            png = Path(tmp) / "shot.png"
            driver.save_screenshot(str(png))
            probs = driver.execute_script("return window.mlpcli.shown().probabilities")
        finally:
            driver.quit()
        image = Image.open(png).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        image.save(args.out, optimize=True)
    top = int(np.argmax(probs))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB; page {result.size / 1e6:.2f} MB; "
          f"the drawn 3 is read as {top} with p = {probs[top]:.3f})")


if __name__ == "__main__":
    main()
