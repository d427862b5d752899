"""
Time and peak memory of image preparation, PSF matching and alignment.

Builds an 18-band mock galaxy with 1000 x 1000 pixels per band and runs
`prepare_images`, then `match_psf` on every band (to the worst PSF) and
`align_images` (matching + adaptive reprojection). Run with::

    python benchmarks/imaging.py [npix]
"""

import sys
import time
import tracemalloc

import astropy.units as u

from astro_dustml.datasets import make_mock_galaxy
from astro_dustml.imaging import align_images, match_psf, prepare_images


def _run(label, func):
    tracemalloc.start()
    start = time.perf_counter()
    result = func()
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f'{label:<34s} {elapsed:8.2f} s   peak {peak / 2**20:8.1f} MiB')
    return result


def main(npix=1000):
    fov = 4 * u.arcmin
    start = time.perf_counter()
    mock = make_mock_galaxy(fov=fov, pixel_scale=fov / npix, seed=1)
    print(f'mock galaxy ({npix}^2 x {len(mock.images)} bands) built in '
          f'{time.perf_counter() - start:.1f} s (not part of the figures)')
    galaxy = mock.galaxy
    prepared = _run('prepare_images', lambda: prepare_images(
        mock.images, galaxy={'center': galaxy['center'], 'semimajor': galaxy['semimajor'],
                             'axis_ratio': galaxy['axis_ratio'],
                             'position_angle': galaxy['position_angle']}))
    worst = max(image.meta['psf_fwhm'] for image in prepared.values())
    _run(f'match_psf x18 (to {worst:.4g})',
         lambda: [match_psf(image, worst) for image in prepared.values()])
    aligned = _run('align_images (match + reproject)', lambda: align_images(prepared))
    print(f'output grid {aligned.meta["shape"]}, pixel {aligned.meta["pixel_scale"]:.4g}, '
          f'PSF {aligned.meta["psf_fwhm"]:.4g}')


if __name__ == '__main__':
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
