"""
Make the README's figure, docs/_static/mock_maps.png, by running the README's main job.

The ``astro-dustml`` commands of the README's "Quick start" block are run as
they are written (in a temporary folder, with this checkout's package), and
the figure the job writes (``--plot``) is copied to docs/_static/mock_maps.png.
The figure carries the model's SHA-256 and the package version in its PNG
metadata; astro_dustml/tests/test_visualization.py checks that they match the
bundled default model, so that the figure cannot go stale silently.

Run after any change to the default model, the mock galaxy or the figure::

    python scripts/make_readme_figure.py
"""

import glob
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / 'README.rst'
FIGURE = ROOT / 'docs' / '_static' / 'mock_maps.png'


def readme_job(readme=README):
    """The ``astro-dustml`` commands of the README's main job, as argument lists."""
    text = readme.read_text()
    for line in text.splitlines():
        if 'astro-dustml example' in line and 'astro-dustml estimate' in line:
            commands = [shlex.split(part) for part in line.split('&&')]
            return [c[1:] for c in commands if c and c[0] == 'astro-dustml']
    raise SystemExit(f'No line of {readme} runs both "astro-dustml example" and '
                     '"astro-dustml estimate": where is the main job?')


def main():
    # This checkout's package, whatever is installed
    sys.path.insert(0, str(ROOT))
    from PIL import Image

    from astro_dustml.cli import main as cli

    jobs = readme_job()
    estimate = next(argv for argv in jobs if argv[0] == 'estimate')
    if '--plot' not in estimate:
        raise SystemExit('The README job makes no figure (no --plot).')
    plot = estimate[estimate.index('--plot') + 1]
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix='astro_dustml_readme_') as tmp:
        os.chdir(tmp)
        try:
            for argv in jobs:
                # The shell would expand the globs
                argv = [a for arg in argv for a in (sorted(glob.glob(arg)) or [arg])]
                print('astro-dustml', shlex.join(argv)[:150])
                status = cli(argv)
                if status != 0:
                    raise SystemExit(f'astro-dustml {argv[0]} failed (status {status}).')
            shutil.copyfile(plot, FIGURE)
        finally:
            os.chdir(cwd)
    info = Image.open(FIGURE).text
    print(f'wrote {FIGURE.relative_to(ROOT)}: model {info.get("model")}, '
          f'SHA-256 {info.get("model SHA-256")}, astro_dustml {info.get("astro_dustml version")}')


if __name__ == '__main__':
    main()
