"""
Peak memory of `astro_dustml.sed.make_pixel_table` on a large aligned stack.

Builds an aligned 18-band stack (default 2000 x 2000 pixels, float64 data and
StdDevUncertainty, boolean masks), turns it into a pixel table and prints the
peak memory that tracemalloc (which numpy reports to) measures during the call,
beside the size of the input stack and of the output table.

Usage: python benchmarks/pixel_table.py [size]
"""

import sys
import time
import tracemalloc

import astropy.units as u
import numpy as np
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.wcs import WCS
from ndcube import NDCollection

from astro_dustml.bands import INPUT_BANDS
from astro_dustml.sed import make_pixel_table


def main(size=2000):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [150, 2]
    wcs.wcs.crpix = [size / 2, size / 2]
    wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    rng = np.random.default_rng(0)
    images = []
    for band in INPUT_BANDS:
        data = rng.normal(1, 0.5, (size, size))
        mask = np.zeros((size, size), dtype=bool)
        mask[:size // 10] = True  # some masked rows (kept, flagged)
        images.append((band, CCDData(data, unit='MJy/sr', wcs=wcs, mask=mask,
                                     uncertainty=StdDevUncertainty(np.full((size, size), 0.1)))))
    stack = NDCollection(images, aligned_axes='all')
    input_bytes = sum(im.data.nbytes + im.uncertainty.array.nbytes + im.mask.nbytes
                      for _, im in images)
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    start = time.perf_counter()
    table = make_pixel_table(stack, galaxy='BENCH', distance=10 * u.Mpc)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    table_bytes = sum(np.asarray(table[c]).nbytes for c in table.colnames)
    mb = 1024 ** 2
    print(f'stack: {size} x {size} pixels, {len(INPUT_BANDS)} bands; '
          f'{len(table)} rows x {len(table.colnames)} columns in {elapsed:.1f} s')
    print(f'input stack (data + uncertainty + mask): {input_bytes / mb:.0f} MiB')
    print(f'output table: {table_bytes / mb:.0f} MiB')
    print(f'peak memory allocated during make_pixel_table: {(peak - base) / mb:.0f} MiB '
          f'= {(peak - base) / table_bytes:.2f} x the output table '
          f'= {(peak - base) / input_bytes:.2f} x the input stack')


if __name__ == '__main__':
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
