"""
astro_dustml: resolved dust maps of galaxies from UV to mid-infrared images.

Following Dobbels & Baes (2021, A&A), machine-learning models trained on
DustPedia galaxies predict the specific dust luminosity, specific dust mass
and dust temperature, with a per-pixel uncertainty, from GALEX, SDSS, 2MASS,
WISE and Spitzer/IRAC images.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from astropy import config as _config

from . import _moved

try:
    __version__ = version(__name__)
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = '0.0.0'

__all__ = ['conf', 'Conf', '__version__']


class Conf(_config.ConfigNamespace):
    """
    Configuration parameters for `astro_dustml`.

    Read at call time; change them for a block of code with
    ``conf.set_temp``, or permanently in ``~/.astropy/config/astro_dustml.cfg``.
    """

    default_model = _config.ConfigItem(
        'dustpedia-global',
        'Name of the pretrained model used when none is given.')
    model_urls = _config.ConfigItem(
        [],
        'Mirror list of base URLs from which registered pretrained models '
        'are downloaded (<url><name>/<file>), tried in order. Empty by '
        'default: the bundled models need no download and no public mirror '
        'exists yet. Add one with conf.model_urls = ["https://host/models/"] '
        'or a "model_urls = https://host/models/" line in '
        '~/.astropy/config/astro_dustml.cfg.', cfgtype='string_list')
    allow_download = _config.ConfigItem(
        True, 'Whether models and data files may be downloaded when they '
        'are not in the astropy cache.')
    band_sets = _config.ConfigItem(
        True, 'Predict each pixel with the band-set model of exactly its usable '
        'bands (False: the single default model, with band dropout, for all).')
    band_set_min_fraction = _config.ConfigItem(
        0.05, 'A group of pixels sharing a pattern of usable bands gets the model '
        'of exactly its bands (trained on demand if need be) when it holds at '
        "least this fraction of the galaxy's pixels and band_set_min_pixels "
        'pixels; smaller groups take the shipped or cached model of the largest '
        'subset of their bands.')
    band_set_min_pixels = _config.ConfigItem(
        20, 'Smallest number of pixels of a pattern of usable bands that gets '
        'a model of its own (see band_set_min_fraction).')
    band_set_on_demand = _config.ConfigItem(
        True, 'Whether a band set without a shipped or cached model is trained '
        'on demand (from conf.band_set_training_loader) and cached.')
    band_set_on_demand_cv = _config.ConfigItem(
        True, 'Whether a band-set model trained on demand during an estimate '
        'also runs the 4-fold CV of its card (5 fits instead of one: about '
        '25 s instead of 5 s on two free cores).')
    band_set_training_loader = _config.ConfigItem(
        '', "'module:function' returning the global training table of on-demand "
        'band-set models (called with path= and require_targets=True); empty '
        'for astro_dustml.sed.load_dustpedia_global.')
    photometric_noise = _config.ConfigItem(
        True, "Add the pixels' flux errors, propagated through the model, to "
        "the maps' uncertainties when the model was trained on global "
        "photometry (one row per galaxy, high signal-to-noise ratios); "
        "a model trained on pixels has them in its own sigma already.")
    model_registry = _config.ConfigItem(
        '', 'Path of a JSON file of registered pretrained models (name -> '
        'files, SHA-256, description) used instead of the one shipped in '
        'the package; empty for the shipped one.')
    remote_timeout = _config.ConfigItem(
        30., 'Timeout in seconds for downloads of models and data files.')
    dustpedia_dir = _config.ConfigItem(
        '', 'Folder holding local copies of the DustPedia archive tables '
        '(photometry, HyperLEDA, CIGALE catalogue); empty to download them.')
    psf_dir = _config.ConfigItem(
        '', 'Folder holding instrument PSF images (e.g. the DustPedia/CAAPR, '
        'unWISE, IRAC and Herschel PSFs) used by astro_dustml.imaging.load_psf; '
        'empty to use Gaussian PSFs of the registry FWHMs.')
    memory_limit = _config.ConfigItem(
        8.0, 'Largest memory (GiB) that one step of a call may plan to allocate: an input '
        'image copy, the common pixel grid of the alignment, a PSF-matching kernel and '
        'its FFTs. Sizes are planned from the headers before anything is allocated, and a '
        'call that would need more is refused with an error that names the band.',
        cfgtype='float')
    dustpedia_url = _config.ConfigItem(
        'http://dustpedia.astro.noa.gr/Data/GetData?dataPath=',
        'Base URL of the public DustPedia archive files.')


conf = Conf()

# The module paths of releases before the subpackages, for one release
_moved.install()

# The public entry points, importable from the top level. They are loaded on
# first use (PEP 562) so that importing a light module such as
# astro_dustml.bands does not import scikit-learn and xgboost.
_ENTRY_POINTS = {
    'estimate_dust_maps': 'maps.estimate', 'read_dust_maps': 'maps.io',
    'write_dust_maps': 'maps.io', 'estimate_mosaic': 'maps.mosaic',
    'estimate_many': 'maps.survey', 'DustModel': 'model.core',
    'get_model': 'model.registry', 'list_models': 'model.registry',
    'download_models': 'model.registry', 'plot_dust_maps': 'visualization',
    'fit_dust_sed': 'farinfrared.dust_fit', 'stellar_mass_map': 'farinfrared.stellar_mass',
    'predict_fir_maps': 'farinfrared.predict', 'compare_fir': 'farinfrared.predict',
    'constrain_to_lowres': 'farinfrared.constrain'}
__all__ += list(_ENTRY_POINTS)


def __getattr__(name):
    if name in _ENTRY_POINTS:
        module = import_module(f'.{_ENTRY_POINTS[name]}', __name__)
        return getattr(module, name)
    if name in _moved.MOVED:  # ``from astro_dustml import estimate`` of a moved module
        return import_module(f'.{name}', __name__)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | set(_ENTRY_POINTS))
