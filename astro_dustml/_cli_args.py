"""
Command-line arguments as Quantities, and the error the command line reports as usage.

`_quantity` turns '9Mpc' or '18arcsec' into a checked Quantity with an
example of the expected form in its error; `_UsageError` is what the
subcommands raise for a bad argument (``astro_dustml.cli`` prints it as
argparse does).

Uses `astro_dustml._checks`.
"""


class _UsageError(Exception):
    """Bad command-line values found after parsing: exit status 2."""


# Examples of each kind of value, in command-line spelling
_CLI_EXAMPLES = {'length': '9.0Mpc or 400pc', 'angle': '18arcsec, 1.5arcmin or 30deg'}


def _quantity(text, physical_type, what, *, positive=True):
    """A command-line quantity, checked like the Python API checks it (named by option)."""
    import astropy.units as u

    from ._checks import _positive_quantity
    types = physical_type if isinstance(physical_type, tuple) else (physical_type,)
    example = ' or '.join(_CLI_EXAMPLES[t] for t in types)
    wanted = ' or '.join(f'an {t}' if t[0] in 'aeiou' else f'a {t}' for t in types)
    try:
        value = u.Quantity(text)
    except (TypeError, ValueError):
        raise _UsageError(f'{what}: {text!r} is not {wanted}; give a number with a unit, '
                          f'e.g. {example}.') from None
    if value.unit.physical_type not in types:
        raise _UsageError(f'{what}: {text!r} is not {wanted}; give a unit, e.g. {example}.')
    if positive:
        try:
            _positive_quantity(value, what, types, example=example)
        except (TypeError, ValueError) as exc:
            raise _UsageError(str(exc)) from None
    return value
