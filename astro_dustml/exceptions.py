"""Warning and exception classes of `astro_dustml`."""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = ['AstroDustMLWarning', 'StarMaskingWarning', 'OutOfDomainWarning',
           'ModelIntegrityError', 'ModelNotAvailableError', 'MemoryLimitError']


class AstroDustMLWarning(AstropyUserWarning):
    """Base class of the warnings issued by `astro_dustml`."""


class StarMaskingWarning(AstroDustMLWarning):
    """Something in foreground-star masking needed a fallback."""


class OutOfDomainWarning(AstroDustMLWarning):
    """Inputs lie outside the domain a model was trained on."""


class ModelIntegrityError(OSError):
    """A model's files are missing, corrupt or fail their SHA-256 check."""


class ModelNotAvailableError(OSError):
    """A registered model is neither bundled, cached nor downloadable."""


class MemoryLimitError(ValueError, MemoryError):
    """
    A call would allocate more than ``astro_dustml.conf.memory_limit``.

    Raised from the sizes planned from the headers, before the allocation;
    the message names the band, the planned size and the limit.
    """
