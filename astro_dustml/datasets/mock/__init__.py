"""
Deterministic mock disc galaxies for tests, examples and benchmarks.

A mock galaxy is a stellar mass map on the sky (an exponential disc with a
bulge, and spiral arms or a bar) times a spatially varying mixture of real
galaxies' SEDs. Every quantity a region emits or holds is taken from DustPedia
galaxies, so that the relation between a mock pixel's colours and its dust is
the relation seen in real galaxies (Dobbels & Baes 2021 train on it):

- **SED templates** (``astro_dustml/data/mock_templates.ecsv``, made by
  ``scripts/make_mock_templates.py``): for 200 DustPedia galaxies, the UV to
  mid-infrared SED per solar mass of stars (the Bayesian fluxes of a pcigale fit
  to the 18 input bands, Dobbels et al. 2020; they contain the galaxies' own
  stellar populations, attenuation and hot-dust and PAH emission), and the
  CIGALE/THEMIS catalogue values of Nersesian et al. (2019): stellar mass,
  specific star formation rate, ``sLd``, ``sMd``, ``Td``.
- **Scaling relations**: a mock of stellar mass M draws its ``n_templates``
  templates among the DustPedia galaxies nearest to M in stellar mass, so the
  global sSFR-M*, dust-to-stellar-mass-M* and Td relations of DustPedia hold
  for the mock as a whole.
- **Structure**: the templates are ordered by the quantity of the
  ``dust_recipe`` (specific star formation rate, ``sMd``, or ``-Td``). Each
  position takes a place in that sequence from its radius (inside out: the
  centre is the low-sSFR, dust-poor, warm end, the D25 ellipse the other end),
  raised on spiral arms, clumps or a ring and lowered on a bar
  (``pattern``), with a smooth random field (a sum of random plane waves) on
  top; its SED is the Gaussian-weighted mixture (width 1.5 templates) of the
  templates around that place, per unit stellar mass.
- **Truth**: the extensive quantities add up, so per pixel
  ``Mstar = sum(m_k)``, ``Ldust = sum(m_k 10**sLd_k)``,
  ``Mdust = sum(m_k 10**sMd_k)``, with ``m_k`` the stellar mass of template
  k in the pixel; ``sLd = log10(Ldust / Mstar)``, ``sMd = log10(Mdust /
  Mstar)``, and ``Td`` is the temperature of the dust-mass-weighted mean
  radiation field, ``Td = (sum(Md_k Td_k**5.79) / sum(Md_k))**(1 / 5.79)``
  (THEMIS: ``Umin ~ Td**5.79``; the far-infrared emission adds up the same
  way). A pixel made of one template has exactly that template's values.
  At a coarser resolution the extensive maps are smoothed first, then
  divided, as the images are.
- **Far infrared** (beyond 30 micron; the templates stop at 22 micron): a
  modified black body (beta = 1.79) at each template's ``Td`` carrying 65% of
  the luminosity of its dust mass heated by ``Umin = (Td / 18.3 K)**5.79``
  (200 Lsun/Msun per unit Umin: the THEMIS relations of the catalogue), so
  the far infrared traces ``Mdust`` and ``Td``; MIPS 24 is extrapolated from
  WISE 12 and 22.

``dust_recipe='analytic'`` keeps the earlier synthetic recipe (two fixed
stellar templates, dust heated by them; see ``_analytic.py``), whose colours
lie outside real galaxies'.

`make_mock_survey` yields many different mock galaxies, one at a time.
"""

from ._render import _tan_wcs
from .galaxy import *
from .galaxy import __all__ as _galaxy_all
from .survey import *
from .survey import __all__ as _survey_all

__all__ = list(_galaxy_all) + list(_survey_all)
