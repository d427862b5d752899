"""The progress bar of estimate_dust_maps names the step that runs (issue #21)."""

# What runs before each update, in order (the bar ends with 'done')
STEPS = ['preparing, PSF-matching and reprojecting the images', 'building the pixel table',
         'predicting', 'making the maps']

import io  # noqa: E402
import re  # noqa: E402
import warnings  # noqa: E402

import astropy.units as u  # noqa: E402

from astro_dustml.datasets import make_mock_galaxy  # noqa: E402
from astro_dustml.exceptions import OutOfDomainWarning  # noqa: E402
from astro_dustml.maps import estimate_dust_maps  # noqa: E402


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_names_each_step(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr('sys.stdout', terminal)
    mock = make_mock_galaxy(fov=2 * u.arcmin, semimajor=50 * u.arcsec)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', OutOfDomainWarning)
        estimate_dust_maps(mock.images, galaxy=mock.galaxy, progress=True)
    frames = [f for f in terminal.getvalue().split('\r') if f.strip()]
    # one frame per step, each with its count and the name of the step running
    shown = []
    for frame in frames:
        text = re.sub(r'\x1b\[[0-9;]*m', '', frame)  # colours off
        count = re.search(r'\s(\d)\s*/\s*(\d)\s', text)
        assert count, text
        assert int(count.group(2)) == len(STEPS), text
        if not shown or shown[-1][0] != int(count.group(1)):  # the last frame repeats
            shown.append((int(count.group(1)), text.rstrip()))
    assert [n for n, _ in shown] == list(range(len(STEPS) + 1))
    for n, text in shown:
        assert text.endswith(STEPS[n] if n < len(STEPS) else 'done'), text
