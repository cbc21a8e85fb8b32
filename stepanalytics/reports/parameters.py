"""The notebook parameters a user may set, checked before any kernel starts.

``--param name=value`` reaches a notebook as a Python literal.  A value of
the wrong type (``suppression_threshold=abc``) would otherwise fail deep
inside the notebook with a raw ``TypeError``, after seconds of work, and a
value out of range (``suppression_threshold=0``) would render a committee
report that hides nothing.  :func:`check_parameters` refuses both at once
with a :class:`~stepanalytics.errors.UsageError` naming the parameter, the
value and what is allowed (exit status 2 on the command line).

The smallest suppression threshold accepted is 2 (:data:`MIN_SUPPRESSION_THRESHOLD`):
with 1, a published cell of 2 patients would tell each of the two the
other's status; 2 is the weakest rule in use that prevents it.  The default
is 10 (counts from 1 to 10 hidden, as the CMS cell-size policy); many
registries use 5.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stepanalytics.errors import UsageError

DEFAULT_SUPPRESSION_THRESHOLD = 10
#: Counts from 1 to the threshold are hidden; below 2 a committee report would show cells
#: of 2 patients, each of whom would learn the other's status.
MIN_SUPPRESSION_THRESHOLD = 2
#: Parameters holding instrument codes (lists of strings).
INSTRUMENT_PARAMETERS = ("instruments", "trajectory_instruments")


def check_suppression_threshold(value: object) -> int:
    """The threshold as an int, or a UsageError saying what is allowed.

    Examples
    --------
    >>> check_suppression_threshold(5)
    5
    >>> try:
    ...     check_suppression_threshold("abc")
    ... except UsageError as err:
    ...     print(str(err)[:60])
    suppression_threshold must be a whole number of at least 2 (
    """
    allowed = (
        f"a whole number of at least {MIN_SUPPRESSION_THRESHOLD} (counts from 1 to it are "
        f"hidden; default {DEFAULT_SUPPRESSION_THRESHOLD})"
    )
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"suppression_threshold must be {allowed}, not {value!r}.")
    if value < MIN_SUPPRESSION_THRESHOLD:
        raise UsageError(
            f"suppression_threshold must be {allowed}, not {value}: below "
            f"{MIN_SUPPRESSION_THRESHOLD} a committee report would show cells of 2 patients, "
            "each of whom would learn the other's status."
        )
    return value


def _check_instruments(name: str, value: object) -> list[str]:
    example = f'e.g. --param {name}=\'["odi", "pseq"]\''
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise UsageError(f"{name} must be a list of instrument codes ({example}), not {value!r}.")
    codes = list(value)
    wrong = [c for c in codes if not isinstance(c, str) or not c.strip()]
    if wrong:
        raise UsageError(f"{name} must hold instrument codes as text ({example}); got {wrong!r}.")
    from stepanalytics.instruments import get_registry

    registry = get_registry()
    unknown = [c for c in codes if c not in registry]
    if unknown:
        raise UsageError(
            f"{name}: unknown instrument code(s) {unknown}; the instrument registry knows "
            f"{', '.join(sorted(registry.codes))}."
        )
    return codes


def check_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Check the values of the parameters stepanalytics knows; return a clean copy.

    Parameters
    ----------
    parameters : mapping
        Extra notebook parameters (``--param name=value``), already parsed
        as literals.  Names the notebooks do not declare are refused later,
        against the notebook itself.

    Returns
    -------
    dict
        The same parameters; instrument lists as lists.

    Raises
    ------
    UsageError
        A known parameter with a value of the wrong type or out of range.

    Examples
    --------
    >>> check_parameters({"suppression_threshold": 5, "instruments": ("odi",)})
    {'suppression_threshold': 5, 'instruments': ['odi']}
    >>> try:
    ...     check_parameters({"suppression_threshold": 0})
    ... except UsageError as err:
    ...     print(str(err).split(": ")[0].split("), ")[-1])
    not 0
    """
    out = dict(parameters)
    if "suppression_threshold" in out:
        out["suppression_threshold"] = check_suppression_threshold(out["suppression_threshold"])
    for name in INSTRUMENT_PARAMETERS:
        if name in out:
            out[name] = _check_instruments(name, out[name])
    return out


def suppression_threshold_of(parameters: Mapping[str, Any]) -> int:
    """The threshold a report will use: the parameter when given, else the default."""
    value = parameters.get("suppression_threshold", DEFAULT_SUPPRESSION_THRESHOLD)
    return check_suppression_threshold(value)


#: Parameters every report notebook declares; set through render_report's keywords.
CORE_PARAMETERS = ("data", "clinic", "period", "shared")


def notebook_parameters(
    template: Path, *, core: Mapping[str, str], extra: Mapping[str, Any]
) -> dict[str, Any]:
    """The notebook's parameters: the core ones it declares, and the extra ones checked.

    Raises
    ------
    UsageError
        The notebook has no cell tagged ``parameters``, an extra parameter
        clashes with a core one, or the notebook does not declare it.
    """
    import papermill

    declared = papermill.inspect_notebook(str(template))
    if not declared:
        raise UsageError(
            f"The notebook {template.name} has no cell tagged 'parameters'; "
            "papermill needs one to inject the data path, clinic and period."
        )
    clashes = sorted(set(extra) & set(CORE_PARAMETERS))
    if clashes:
        raise UsageError(
            f"Set {', '.join(clashes)} with render_report's own keywords, not in parameters."
        )
    unknown = sorted(set(extra) - set(declared))
    if unknown:
        raise UsageError(
            f"The notebook {template.name} has no parameter named {', '.join(unknown)}; "
            f"it declares: {', '.join(declared)}."
        )
    params = {k: v for k, v in core.items() if k in declared}
    params.update(extra)
    return params
