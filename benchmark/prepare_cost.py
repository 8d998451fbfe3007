"""What preparing a photo costs, by its size: the seconds and the peak memory of
stages.lib.prepare.load_digit on a phone-like photo (a pen stroke on slightly noisy, tinted
paper, saved as a JPEG), each size in a fresh process so that its peak is its own. What prepare.WORK_PIXELS (the size an
image is scaled down to first) saves shows here.

    python benchmark/prepare_cost.py 3 12 24
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]


def photo(megapixels, path):
    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = round(width * 3 / 4)
    paper = Image.new("RGB", (width, height), (235, 230, 220))
    ImageDraw.Draw(paper).line(
        [(width * 0.4, height * 0.2), (width * 0.6, height * 0.25), (width * 0.45, height * 0.8)],
        fill=(20, 20, 30), width=width // 60)
    grain = np.random.default_rng(0).integers(-3, 4, (height, width, 1))
    noisy = np.clip(np.asarray(paper).astype(np.int16) + grain, 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(path, quality=85)
    return width, height


def peak_memory_mb():
    # VmHWM rather than getrusage's ru_maxrss, which a child inherits from its parent.
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def measure(path):
    """Run in a fresh process: seconds, and the rise of peak memory in MB."""
    sys.path.insert(0, str(ROOT))
    from stages.lib.prepare import load_digit

    before = peak_memory_mb()
    start = time.perf_counter()
    load_digit(path)
    seconds = time.perf_counter() - start
    print(seconds, peak_memory_mb() - before)


def main():
    if sys.argv[1:2] == ["--measure"]:
        measure(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("megapixels", type=float, nargs="+")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for megapixels in args.megapixels:
            path = Path(folder) / f"{megapixels}.jpg"
            width, height = photo(megapixels, path)
            output = subprocess.run([sys.executable, __file__, "--measure", str(path)],
                                    capture_output=True, text=True, check=True).stdout
            seconds, peak_mb = map(float, output.split())
            print(f"{width}x{height} ({width * height / 1e6:.1f} MP): {seconds:.2f} s, "
                  f"peak memory +{peak_mb:.0f} MB ({seconds / (width * height / 1e6):.2f} s and "
                  f"{peak_mb / (width * height / 1e6):.0f} MB a megapixel)")


if __name__ == "__main__":
    main()
