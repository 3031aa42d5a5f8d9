"""The forecast method's params (from Python values) and result (as a Forecast).

The daemon validates every parameter and names the one at fault, so the
client checks only what JSON itself cannot carry (NaN, infinity, objects
json does not know). Everything else is passed through untouched, keeping
the daemon the one place that defines the rules.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

__all__ = ["Forecast", "forecast_params"]


def forecast_params(
    series: Any,
    prediction_length: Any,
    *,
    num_samples: Any = 0,
    quantiles: Any = None,
    seed: Any = None,
    return_samples: bool = False,
    groups: Any = None,
    timeout_ms: Any = None,
    series_id: Any = None,
    start: Any = None,
    interval: Any = None,
    timestamps: Any = None,
) -> Dict[str, Any]:
    """The ``params`` object of a forecast request; optional fields only when set."""
    params: Dict[str, Any] = {
        "series": encode_series(series),
        "prediction_length": _integer(prediction_length, "prediction_length"),
    }
    if num_samples:
        params["num_samples"] = _integer(num_samples, "num_samples")
    if quantiles is not None:
        params["quantiles"] = [_number(q, "quantiles[%d]" % i) for i, q in enumerate(_plain(quantiles))]
    if seed is not None:
        params["seed"] = _integer(seed, "seed")
    if return_samples:
        params["return_samples"] = True
    if groups is not None:
        params["groups"] = [_integer(g, "groups[%d]" % i) for i, g in enumerate(_plain(groups))]
    if timeout_ms is not None:
        params["timeout_ms"] = _integer(timeout_ms, "timeout_ms")
    if series_id is not None:
        params["series_id"] = series_id
    params.update(time_axis(start, interval, timestamps))
    return params


def time_axis(start: Any, interval: Any, timestamps: Any) -> Dict[str, Any]:
    """start and interval (numbers, or datetime/timedelta), or timestamps, as params."""
    out: Dict[str, Any] = {}
    if start is not None:
        out["start"] = start.timestamp() if hasattr(start, "timestamp") else _number(start, "start")
    if interval is not None:
        seconds = interval.total_seconds() if hasattr(interval, "total_seconds") else interval
        out["interval"] = _number(seconds, "interval")
    if timestamps is not None:
        out["timestamps"] = [t.timestamp() if hasattr(t, "timestamp") else _number(t, "timestamps[%d]" % i)
                             for i, t in enumerate(_plain(timestamps))]
    return out


def encode_series(series: Any) -> List[Any]:
    """A flat list (one variate) or a list of lists, NaN/None as null.

    numpy arrays (or anything with ``tolist``, e.g. pandas) are converted
    first. The shape is kept as given: a flat series stays flat.
    """
    series = _plain(series)
    if not isinstance(series, (list, tuple)):
        raise TypeError("series must be a sequence of numbers or of sequences, got %s" % type(series).__name__)
    if series and _is_sequence(series[0]):
        rows = []
        for i, row in enumerate(series):
            row = _plain(row)
            if not isinstance(row, (list, tuple)):
                raise TypeError("series[%d]: expected a sequence like series[0], got %s" % (i, type(row).__name__))
            rows.append([_observation(v, i, j) for j, v in enumerate(row)])
        return rows
    return [_observation(v, None, j) for j, v in enumerate(series)]


def _plain(value: Any) -> Any:
    """numpy arrays and pandas objects to lists; everything else unchanged."""
    tolist = getattr(value, "tolist", None)
    if tolist is not None and not isinstance(value, (list, tuple, str, bytes)):
        return tolist()
    return value


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (hasattr(value, "tolist") and hasattr(value, "__len__"))


def _observation(value: Any, row: Optional[int], col: int) -> Any:
    """One history value: None and NaN become null (missing)."""
    if value is None:
        return None
    where = "series[%d]" % col if row is None else "series[%d][%d]" % (row, col)
    number = _number(value, where)
    if isinstance(number, float) and math.isnan(number):
        return None
    return number


def _number(value: Any, where: str) -> Any:
    """An int or a finite-or-NaN float; numpy scalars and Decimals are converted."""
    if isinstance(value, bool):
        return value  # not a number: the daemon refuses it and names the field
    if isinstance(value, int):
        return int(value)
    if not isinstance(value, float):
        if hasattr(value, "__index__"):
            return int(value.__index__())
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError("%s: expected a number, got %r" % (where, value)) from None
    if math.isinf(value):
        raise ValueError("%s: %r cannot be sent (JSON has no infinity)" % (where, value))
    return float(value)


def _integer(value: Any, where: str) -> Any:
    """An int as the daemon expects; numpy integers converted, floats passed on to be judged."""
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if hasattr(value, "__index__"):
        return int(value.__index__())
    return _number(value, where)


@dataclass(frozen=True)
class Forecast:
    """A forecast result. Arrays are indexed variate first, then step.

    ``mean`` and ``median`` are [V][h] (``median`` may be None for a mean
    forecast past the first patch); ``quantiles`` maps each level asked to
    its [V][h] values; ``samples`` is [N][V][h] when asked for. ``model`` and
    ``timing`` are the daemon's dicts as sent, ``raw`` the whole result.
    With ``as_numpy=True`` the arrays are float64 numpy arrays (null as NaN).
    """

    mean: Any
    median: Any
    quantiles: Dict[float, Any]
    samples: Any = field(default=None, repr=False)
    model: Dict[str, Any] = field(default_factory=dict)
    timing: Optional[Dict[str, Any]] = None
    series_id: Any = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def num_variates(self) -> int:
        """V, the number of variates forecast."""
        return len(self.mean)

    @property
    def prediction_length(self) -> int:
        """h, the number of steps forecast."""
        return len(self.mean[0]) if len(self.mean) else 0

    @classmethod
    def from_result(cls, result: Dict[str, Any], as_numpy: bool = False) -> "Forecast":
        """Builds a Forecast from the daemon's result object."""
        if not isinstance(result, dict) or not isinstance(result.get("mean"), list):
            raise ValueError("a forecast result needs a 'mean' array")
        convert = _to_numpy if as_numpy else (lambda a: a)
        quantiles: Dict[float, Any] = {}
        q = result.get("quantiles")
        if q is not None:
            levels, values = q["levels"], q["values"]
            if len(levels) != len(values):
                raise ValueError("quantiles: %d levels but %d value arrays" % (len(levels), len(values)))
            quantiles = {float(level): convert(v) for level, v in zip(levels, values)}
        median = result.get("median")
        samples = result.get("samples")
        return cls(
            mean=convert(result["mean"]),
            median=None if median is None else convert(median),
            quantiles=quantiles,
            samples=None if samples is None else convert(samples),
            model=result.get("model") or {},
            timing=result.get("timing"),
            series_id=result.get("series_id"),
            raw=result,
        )


def _to_numpy(values: Any) -> Any:
    """A float64 array; null (a non-finite prediction) becomes NaN."""
    import numpy  # only when asked for: numpy is optional

    return numpy.array(values, dtype=numpy.float64)
