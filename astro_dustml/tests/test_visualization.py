"""
Figures of dust maps: rendered with Agg, with the artists a reader relies on.

The maps are synthetic, with a known galaxy ellipse and known flagged pixels,
so the expected legend entries, crop and colour ranges follow from the inputs.
"""

import hashlib
import warnings
import json
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.wcs import WCS
from matplotlib.patches import Ellipse
from ndcube import NDCollection
from PIL import Image

import astro_dustml
from astro_dustml import __version__, conf
from astro_dustml.maps import MAP_FLAGS
from astro_dustml.visualization import figure_metadata, plot_dust_maps, save_dust_maps_figure

MODELS = Path(astro_dustml.__file__).parent / 'data' / 'models'
README_FIGURE = Path(__file__).resolve().parents[2] / 'docs' / '_static' / 'mock_maps.png'
SHAPE = (60, 60)
CDELT = 2 / 3600  # 2 arcsec pixels
SEMIMAJOR = 20  # arcsec: 10 pixels


def _wcs(crpix=(30.5, 30.5), cdelt=CDELT):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [150., 2.]
    wcs.wcs.crpix = list(crpix)
    wcs.wcs.cdelt = [-cdelt, cdelt]
    return wcs


@pytest.fixture(scope='module')
def maps():
    """Maps of a galaxy in the middle of a 60x60 grid, flagged like estimate_dust_maps."""
    y, x = np.mgrid[:SHAPE[0], :SHAPE[1]]
    r = np.hypot(x - 29.5, y - 29.5)
    flags = np.where(r > 10, MAP_FLAGS['OUTSIDE'], 0).astype(np.int16)
    flags[29:31, 25:27] = MAP_FLAGS['OUT_OF_DOMAIN']  # 4 of the galaxy pixels
    rng = np.random.default_rng(3)
    card = json.loads((MODELS / conf.default_model / 'model.json').read_text())
    meta = {'model': card, 'model_name': conf.default_model, 'psf_fwhm': 12. * u.arcsec,
            'galaxy': {'name': 'NGC 9999', 'center': '10h00m00s +02d00m00s',
                       'semimajor': SEMIMAJOR * u.arcsec, 'axis_ratio': 1.,
                       'position_angle': 0 * u.deg}}
    members = []
    for name, unit, centre in [('sLd', u.dex, 0.3), ('sMd', u.dex, -2.7), ('Td', u.K, 22.)]:
        data = centre + rng.normal(0, 0.1, SHAPE)
        # sigma nearly uniform: 0.200 to 0.201
        sigma = 0.2 + 1e-3 * rng.random(SHAPE)
        members.append((name, CCDData(data, unit=unit, wcs=_wcs(), mask=flags != 0,
                                      uncertainty=StdDevUncertainty(sigma), meta=meta)))
    return NDCollection(members, aligned_axes='all', meta=dict(meta, flags=flags))


def _map_axes(fig):
    return [ax for ax in fig.axes if hasattr(ax, 'coords') and ax.images]


def _offset(ax, wcs):
    """Pixel (x, y) of the full map grid at the first pixel of a panel's cut."""
    x, y = wcs.world_to_pixel(ax.wcs.pixel_to_world(0, 0))
    return int(round(float(x))), int(round(float(y)))


def test_ellipse_legend_title_crop(maps):
    fig = plot_dust_maps(maps)
    axes = _map_axes(fig)
    assert len(axes) == 6
    for ax in axes:
        ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
        assert len(ellipses) == 1
        # 20 arcsec semi-major axis on 2 arcsec pixels: 20 pixels across
        assert ellipses[0].width == pytest.approx(20, rel=1e-3)
        centre = ax.wcs.pixel_to_world(*ellipses[0].center)
        assert centre.ra.deg == pytest.approx(150, abs=1e-6)
        assert centre.dec.deg == pytest.approx(2, abs=1e-6)
        # Cut to the ellipse (pixels 19.5..39.5 of the map) plus a 10 % margin
        x0, y0 = _offset(ax, maps['sLd'].wcs)
        ny, nx = ax.images[0].get_array().shape
        # (pixel edges: the cut's first pixel spans x0 - 0.5 .. x0 + 0.5)
        assert 16 < x0 - 0.5 < 19.5 and 39.5 < x0 + nx - 0.5 < 43
        assert 16 < y0 - 0.5 < 19.5 and 39.5 < y0 + ny - 0.5 < 43
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert labels[0] == 'galaxy ellipse'
    assert 'outside the galaxy' in labels
    # 4 of the 316 galaxy pixels are out of the training domain
    n_galaxy = np.count_nonzero(maps.meta['flags'] != MAP_FLAGS['OUTSIDE'])
    assert f'out of the training domain ({4 / n_galaxy:.0%})' in labels
    title = fig._suptitle.get_text()
    assert 'NGC 9999' in title and conf.default_model in title


def test_outside_and_out_of_domain_drawn_differently(maps):
    fig = plot_dust_maps(maps)
    ax = _map_axes(fig)[0]
    values, overlay = ax.images
    x0, y0 = _offset(ax, maps['sLd'].wcs)
    ny, nx = values.get_array().shape
    flags = maps.meta['flags'][y0:y0 + ny, x0:x0 + nx]
    # The maps themselves are blank where flagged...
    assert np.all(np.isnan(values.get_array()[flags != 0].filled(np.nan)))
    # ...and the overlay gives outside and out-of-domain pixels two different colours
    rgba = overlay.to_rgba(overlay.get_array())
    outside = rgba[0, 0]
    ood = rgba[29 - y0, 25 - x0]
    assert outside[3] == 1 and ood[3] == 1
    assert not np.allclose(outside[:3], ood[:3])
    assert rgba[30 - y0, 30 - x0, 3] == 0  # valid pixels are not covered


def test_robust_colour_limits(maps):
    fig = plot_dust_maps(maps, percentile=98.)
    value_ax, sigma_ax = _map_axes(fig)[0], _map_axes(fig)[3]
    vmin, vmax = value_ax.images[0].get_clim()
    valid = maps['sLd'].data[~maps['sLd'].mask]
    assert vmin == pytest.approx(np.percentile(valid, 1))
    assert vmax == pytest.approx(np.percentile(valid, 99))
    # sigma varies by 0.5 %: its colour scale starts at zero, so that the
    # variation does not span the whole scale
    smin, smax = sigma_ax.images[0].get_clim()
    assert smin == 0 and smax == pytest.approx(0.201, abs=1e-3)


def test_context_panel_and_rgb(maps):
    # A context image on its own grid (1 arcsec pixels)
    image = NDData(np.random.default_rng(0).random((120, 120)), wcs=_wcs((60.5, 60.5), CDELT / 2),
                   meta={'band': 'WISE_3.4'})
    fig = plot_dust_maps(maps, context=image)
    context_ax = fig.axes[0]
    grey = context_ax.images[0].get_array().shape
    assert context_ax.get_title() == 'WISE_3.4'
    ellipse = [p for p in context_ax.patches if isinstance(p, Ellipse)][0]
    assert ellipse.width == pytest.approx(40, rel=1e-3)  # 40 pixels of 1 arcsec
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert 'galaxy ellipse' in labels
    # Without a galaxy name in the meta, the title takes the context's OBJECT
    nameless = NDCollection([(n, maps[n]) for n in maps.keys()], aligned_axes='all',
                            meta=dict(maps.meta, galaxy=None))
    image.meta['header'] = fits.Header({'OBJECT': 'NGC 4242'})
    fig = plot_dust_maps(nameless, context=image)
    assert fig._suptitle.get_text().startswith('NGC 4242')
    fig = plot_dust_maps(maps, context=[image, image, image])
    assert fig.axes[0].images[0].get_array().shape == (*grey, 3)
    assert grey[0] < 120  # cut to the galaxy on the context's own grid
    small = NDData(np.ones((5, 5)), wcs=_wcs())
    with pytest.raises(ValueError, match='share one pixel grid'):
        plot_dust_maps(maps, context=[image, image, small])
    with pytest.raises(TypeError, match='context='):
        plot_dust_maps(maps, context='W1.fits')


def test_saved_png_carries_provenance(maps, tmp_path):
    path = tmp_path / 'maps.png'
    save_dust_maps_figure(maps, path, dpi=60)
    assert path.stat().st_size > 20000
    png = Image.open(path)
    assert png.size[0] > 500 and png.size[1] > 300
    sha = hashlib.sha256((MODELS / conf.default_model / 'model.json').read_bytes()).hexdigest()
    assert png.text['model SHA-256'] == sha
    assert png.text['astro_dustml version'] == __version__
    assert png.text['model'] == conf.default_model
    # Not all pixels the same: something was drawn
    assert len(np.unique(np.asarray(png.convert('L')))) > 20


def test_without_galaxy_or_flags():
    """Plain maps: no ellipse, no legend, no crop; an unknown name list is an error."""
    ndd = NDData(np.ones((8, 8)), unit=u.K, wcs=_wcs((4.5, 4.5)))
    fig = plot_dust_maps({'Td': ndd})
    assert not fig.legends and not any(ax.patches for ax in _map_axes(fig))
    assert figure_metadata({'Td': ndd}) == {'Software': f'astro_dustml {__version__}',
                                            'astro_dustml version': __version__}
    with pytest.raises(ValueError, match='None of the maps'):
        plot_dust_maps({'Td': ndd}, names=['sLd'])


def test_readme_figure_is_from_the_bundled_model():
    """docs/_static/mock_maps.png (scripts/make_readme_figure.py) is from the default model."""
    if not README_FIGURE.is_file():
        pytest.skip('not a source checkout: no docs/_static/mock_maps.png')
    png = Image.open(README_FIGURE)
    card = MODELS / conf.default_model / 'model.json'
    assert png.text.get('model SHA-256') == hashlib.sha256(card.read_bytes()).hexdigest(), (
        'docs/_static/mock_maps.png was not made with the bundled default model: run '
        'python scripts/make_readme_figure.py')
    assert png.text.get('astro_dustml version') == __version__, (
        'docs/_static/mock_maps.png is from another package version: run '
        'python scripts/make_readme_figure.py')
    assert png.text.get('model') == conf.default_model


def test_plot_shows_which_model_predicted_each_pixel():
    import astropy.units as u
    import numpy as np
    from astropy.nddata import CCDData, StdDevUncertainty
    from astropy.wcs import WCS
    from ndcube import NDCollection

    from astro_dustml.visualization import plot_dust_maps
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.cdelt = [-1e-3, 1e-3]
    model_id = np.zeros((8, 8), np.int16)
    model_id[:, :4] = 1
    members = [(name, CCDData(np.full((8, 8), v), unit=unit, wcs=wcs,
                              uncertainty=StdDevUncertainty(np.full((8, 8), 0.1))))
               for name, v, unit in [('sLd', 0.5, u.dex), ('sMd', -2.5, u.dex),
                                     ('Td', 22., u.K)]]
    models = [{'id': 0, 'name': 'dustpedia-global', 'n_pixels': 32, 'how': 'default'},
              {'id': 1, 'name': 'dustpedia-bands-wise1234', 'n_pixels': 32, 'how': 'shipped'}]
    maps = NDCollection(members, aligned_axes='all',
                        meta={'model_id': model_id, 'band_set_models': models})
    fig = plot_dust_maps(maps)
    titles = [ax.get_title() for ax in fig.axes]
    assert 'model per pixel' in titles
    texts = [t.get_text() for ax in fig.axes if ax.get_legend()
             for t in ax.get_legend().get_texts()]
    assert any('dustpedia-bands-wise1234' in t and '32 px' in t for t in texts), texts
    assert len(fig.axes) == 14  # the 12 of the maps, the model map and its legend
    # one model: no extra column unless asked
    single = NDCollection(members, aligned_axes='all',
                          meta={'model_id': np.zeros((8, 8), np.int16),
                                'band_set_models': models[:1]})
    assert len(plot_dust_maps(single).axes) == 12
    with pytest.raises(ValueError, match='model_id'):
        plot_dust_maps(dict(members), show_models=True)


def _panel_boxes(fig):
    """Window boxes of each panel with its colour bar, the legend and the title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    groups = []
    for ax in fig.axes:
        box = ax.get_tightbbox(renderer)
        if ax.get_label() == '<colorbar>':
            groups[-1].append(box)  # drawn right after the panel it belongs to
        else:
            groups.append([box])
    others = [[artist.get_window_extent(renderer)] for artist in [*fig.legends, fig._suptitle]]
    return groups + others


def _overlapping(groups):
    """Pairs of groups whose boxes overlap by more than a pixel each way."""
    out = []
    for i, a in enumerate(groups):
        for j in range(i + 1, len(groups)):
            for box_a in a:
                for box_b in groups[j]:
                    dx = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
                    dy = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
                    if dx > 1 and dy > 1:
                        out.append((i, j, dx, dy))
    return out


@pytest.mark.parametrize('shape, crpix, axis_ratio, angle, context', [
    ((60, 60), (30.5, 30.5), 1.0, 0, False),       # round galaxy (--axis-ratio left at 1)
    ((60, 60), (30.5, 30.5), 1.0, 0, True),
    ((132, 157), (149.2, -116.7), 0.8, 0, True),   # a small crop of a large grid, far CRPIX
    ((80, 40), (20.5, 40.5), 0.3, 0, True),        # tall and narrow
    ((40, 120), (60.5, 20.5), 0.2, 90, False),     # wide and flat
])
def test_layout_holds_for_any_crop(shape, crpix, axis_ratio, angle, context):
    from astropy.coordinates import SkyCoord
    from matplotlib.figure import Figure
    wcs = _wcs(crpix)
    rng = np.random.default_rng(0)
    maps = {name: CCDData(value + rng.normal(0, 0.1, shape), unit=unit, wcs=wcs,
                          uncertainty=StdDevUncertainty(np.full(shape, 0.1)))
            for name, value, unit in [('sLd', 0.5, u.dex), ('sMd', -2.5, u.dex),
                                      ('Td', 22., u.K)]}
    # the galaxy fills a third of the smaller side, at the grid's centre
    centre = wcs.pixel_to_world((shape[1] - 1) / 2, (shape[0] - 1) / 2)
    semimajor = max(shape) / 3 * CDELT * 3600 * u.arcsec
    galaxy = {'name': 'NGC 9999', 'center': SkyCoord(centre), 'semimajor': semimajor,
              'axis_ratio': axis_ratio, 'position_angle': angle * u.deg}
    kwargs = {'galaxy': galaxy}
    if context:
        kwargs['context'] = CCDData(rng.random(shape), unit='MJy/sr', wcs=wcs,
                                    meta={'band': 'WISE_3.4'})
    # pyplot's own figure and a bare Figure (as save_dust_maps_figure uses) alike
    for fig in (None, Figure()):
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # e.g. "constrained_layout not applied"
            fig = plot_dust_maps(maps, fig=fig, **kwargs)
            groups = _panel_boxes(fig)
        assert len(groups) == 6 + context + 2
        assert not _overlapping(groups)
        if fig.canvas.manager is not None:
            import matplotlib.pyplot as plt
            plt.close(fig)
