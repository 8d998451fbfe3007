"""The draw-a-digit page's figures: the time from lifting the pen to the answer on screen, and the
screenshot in docs/handwriting.md.

Starts mnist-serve on a model (by default the pipeline's), opens its page in headless Chromium
(Debian's chromium, driven by Playwright, as tests/test_serve.py does), draws each digit 0-9 with
the mouse, --rounds times, and prints each answer and time and their median; then draws
--shot-digit and saves the page as a PNG. The model is loaded before the first digit. Last, in
this process, the server's part of an answer: preparing a drawing, and one digit through
predict's classify (Keras' predict_on_batch) against Keras' model.predict.

    python benchmark/serve_page.py [--model PATH] [--rounds 3] [--screenshot docs/images/serve-page.png]
"""

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.lib.provenance import cpu  # noqa: E402
from tests.test_serve import DIGIT_STROKES, draw, png_of, start_serving  # noqa: E402


def median_ms(call, repeats=50):
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def server_side(model_path, drawing):
    """Median milliseconds of the server's steps for one drawing (a PNG's bytes)."""
    from stages.commands.predict import classify, load_classifier
    from stages.lib.prepare import load_digit

    model = load_classifier(model_path)
    digit = load_digit(io.BytesIO(drawing))
    return {
        "prepare the drawing (load_digit)": median_ms(lambda: load_digit(io.BytesIO(drawing))),
        "classify (predict_on_batch)": median_ms(lambda: classify(model, [digit])),
        "Keras' model.predict, for comparison": median_ms(
            lambda: model.predict(digit[None, ..., None], verbose=0)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "data/model/model.keras")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shot-digit", type=int, default=3, choices=sorted(DIGIT_STROKES))
    parser.add_argument("--screenshot", type=Path, default=ROOT / "docs/images/serve-page.png")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    log = Path(tempfile.mkdtemp()) / "serve.log"
    server, address = start_serving(args.model.resolve(), log)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
            page = browser.new_page(viewport={"width": 1024, "height": 768})
            page.goto(address)
            times, wrong = [], []
            for round_ in range(1, args.rounds + 1):
                readings = {digit: draw(page, digit) for digit in DIGIT_STROKES}
                wrong += [(digit, reading["digit"]) for digit, reading in readings.items()
                          if reading["digit"] != str(digit)]
                round_times = [reading["elapsed_ms"] for reading in readings.values()]
                times += round_times
                print(f"round {round_}: " + ", ".join(
                    f"{digit}->{reading['digit']} {reading['elapsed_ms']:.1f} ms"
                    for digit, reading in readings.items()))
                print(f"  median of the ten digits: {np.median(round_times):.1f} ms")
            print(f"all {len(times)} drawings: median {np.median(times):.1f} ms, "
                  f"lowest {min(times):.1f}, highest {max(times):.1f}; read wrong: {wrong or 'none'}")

            shot = browser.new_page(viewport={"width": 760, "height": 500})
            shot.goto(address)
            drawing = png_of(draw(shot, args.shot_digit)["drawing"])
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            shot.screenshot(path=str(args.screenshot))
            browser.close()
    finally:
        server.terminate()
        server.wait()
    print(f"screenshot: {args.screenshot} ({date.today()}, {cpu()['name']}, "
          f"{len(os.sched_getaffinity(0))} cores)")
    for step, milliseconds in server_side(args.model, drawing).items():
        print(f"{step}: median {milliseconds:.2f} ms")


if __name__ == "__main__":
    main()
