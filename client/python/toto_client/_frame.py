"""pandas DataFrames in and out of forecasts (Client.forecast_df).

pandas is optional: it is imported only when a DataFrame method is called.
The index arithmetic that does not need pandas (finding a regular step in
integer timestamps, naming statistics) is plain Python, so it can be used and
tested without pandas.
"""

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["regular_step", "statistic_name", "PreparedFrame", "prepare_frame", "forecast_frame"]

# More grid points than this many times the rows given (plus a little) means the
# frequency is surely wrong (or the data too sparse to forecast at it).
_MAX_GRID_FACTOR = 4
_MAX_GRID_SLACK = 16


def regular_step(times: Sequence[int]) -> Tuple[int, List[int]]:
    """The step of an increasing sequence of integer times, and each time's grid position.

    The step is the most common difference (the smallest of equally common
    ones). Every difference must be a whole multiple of it: a multiple > 1 is
    a gap (missing rows), anything else makes the sequence irregular.
    Returns ``(step, positions)`` with ``positions[i] = (times[i] - times[0]) // step``.
    Raises ValueError for fewer than two times, times not strictly
    increasing, or an irregular sequence.
    """
    if len(times) < 2:
        raise ValueError("cannot tell the frequency of fewer than two timestamps: pass freq=")
    diffs = [b - a for a, b in zip(times, times[1:])]
    for i, d in enumerate(diffs):
        if d <= 0:
            raise ValueError("the index must be strictly increasing: row %d is not after row %d" % (i + 1, i))
    counts = Counter(diffs)
    top = max(counts.values())
    step = min(d for d, n in counts.items() if n == top)
    odd = [d for d in diffs if d % step]
    if odd:
        raise ValueError("irregular index: the most common step is %d but %d of the %d steps are not "
                         "multiples of it (e.g. %d); pass freq= or resample first" % (step, len(odd), len(diffs), odd[0]))
    positions = [(t - times[0]) // step for t in times]
    return step, positions


def statistic_name(level: float) -> str:
    """The column name of a quantile level: 0.1 -> "q0.1", 0.975 -> "q0.975"."""
    return "q" + repr(float(level))


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("toto_client's DataFrame methods need pandas, which is not installed "
                          "(pip install pandas); Client.forecast() takes plain lists") from None
    return pandas


@dataclass
class PreparedFrame:
    """A DataFrame turned into forecast params, and what is needed to index the answer."""

    names: List[Any]          # the variates' column labels, in series order
    series: List[List[Any]]   # [V][T], NaN as None
    offset: Any               # the pandas DateOffset of the time axis
    last: Any                 # the last timestamp of the (regular) context
    index_name: Any
    time_axis: Dict[str, Any]  # start and interval (seconds, or steps for calendar frequencies)


def prepare_frame(df: Any, columns: Optional[Sequence[Any]] = None, freq: Any = None) -> PreparedFrame:
    """Checks df (or a Series) and lays it on its regular time grid.

    The frequency is ``freq`` if given, else ``df.index.freq``, else
    ``pandas.infer_freq``, else the most common difference between
    timestamps. Rows missing from the grid become missing values. Raises
    ValueError for a non-datetime index, an index that is not strictly
    increasing or not regular at that frequency, non-numeric or infinite
    values, and no or unknown columns.
    """
    pd = _pandas()
    import numpy as np  # pandas depends on numpy

    if isinstance(df, pd.Series):
        df = df.to_frame(name=df.name if df.name is not None else "value")
    if not isinstance(df, pd.DataFrame):
        raise TypeError("expected a pandas DataFrame (or Series), got %s" % type(df).__name__)
    index = df.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError("forecast_df needs a DatetimeIndex, got %s; set one with "
                         "df.set_index(pandas.to_datetime(...))" % type(index).__name__)
    if len(index) == 0:
        raise ValueError("the DataFrame has no rows")
    if index.hasnans:
        raise ValueError("the index holds NaT")
    if index.has_duplicates or not index.is_monotonic_increasing:
        raise ValueError("the index must be strictly increasing (sorted, no duplicate timestamps)")

    names = _columns(df, columns)
    for name in names:
        dtype = df[name].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise ValueError("column %r is not numeric (dtype %s)" % (name, dtype))

    offset = _frequency(pd, index, freq)
    grid = pd.date_range(start=index[0], end=index[-1], freq=offset)
    if len(grid) == 0 or grid[0] != index[0] or not index.isin(grid).all():
        raise ValueError("the index is not regular at frequency %s; pass freq= or resample first" % offset.freqstr)
    if len(grid) > _MAX_GRID_FACTOR * len(index) + _MAX_GRID_SLACK:
        raise ValueError("at frequency %s the %d rows span %d steps: mostly missing; pass freq= or resample first"
                         % (offset.freqstr, len(index), len(grid)))

    frame = df[names].reindex(grid)
    values = frame.to_numpy(dtype="float64", na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        row, col = (int(x[0]) for x in np.nonzero(infinite))
        raise ValueError("column %r at %s is infinite: JSON cannot carry it" % (names[col], grid[row]))
    series = [[None if math.isnan(v) else v for v in row] for row in values.T.tolist()]

    return PreparedFrame(names, series, offset, grid[-1], index.name, _time_axis(pd, grid[0], offset))


def _time_axis(pd: Any, first: Any, offset: Any) -> Dict[str, Any]:
    """The protocol's start and interval for a grid starting at ``first``.

    A fixed frequency (hours, days, ...) is in seconds since the epoch, as
    forecast() sends a datetime and a timedelta. A calendar frequency
    (months, business days, weeks) has no fixed interval in seconds, and the
    daemon places predicted steps at a fixed interval, so its unit is the
    step: ``start`` counts the steps since the first on-frequency time from
    1970-01-01, ``interval`` is 1. observe_df() uses the same axis.
    """
    try:
        step_seconds = offset.nanos / 1e9
    except ValueError:
        step_seconds = None
    if step_seconds is not None and step_seconds > 0:
        return {"start": first.timestamp(), "interval": step_seconds}
    anchor = offset.rollforward(pd.Timestamp("1970-01-01", tz=first.tz))
    if first >= anchor:
        steps = len(pd.date_range(anchor, first, freq=offset)) - 1
    else:
        steps = -(len(pd.date_range(first, anchor, freq=offset)) - 1)
    return {"start": steps, "interval": 1}


def _columns(df: Any, columns: Optional[Sequence[Any]]) -> List[Any]:
    if columns is None:
        names = list(df.columns)
    else:
        if isinstance(columns, (str, bytes)) or not hasattr(columns, "__iter__"):
            columns = [columns]
        names = list(columns)
        missing = [c for c in names if c not in df.columns]
        if missing:
            raise ValueError("no column %r in the DataFrame (it has %r)" % (missing[0], list(df.columns)))
    if not names:
        raise ValueError("no columns to forecast")
    if len(set(names)) != len(names) or any(int((df.columns == name).sum()) != 1 for name in names):
        raise ValueError("column names must be unique")
    return names


def _frequency(pd: Any, index: Any, freq: Any) -> Any:
    from pandas.tseries.frequencies import to_offset

    if freq is not None:
        try:
            return to_offset(freq)
        except (TypeError, ValueError) as exc:
            raise ValueError("freq %r: %s" % (freq, exc)) from None
    if index.freq is not None:
        return index.freq
    if len(index) >= 3:
        try:
            inferred = pd.infer_freq(index)
        except (TypeError, ValueError):
            inferred = None
        if inferred is not None:
            return to_offset(inferred)
    unit = getattr(index, "unit", "ns")  # pandas >= 2 may keep s, ms or us
    step, _ = regular_step(index.asi8.tolist())
    return to_offset(pd.Timedelta(step, unit=unit))


def forecast_frame(prepared: PreparedFrame, forecast: Any, prediction_length: int) -> Any:
    """The forecast as a DataFrame: future timestamps by (variate, statistic) columns."""
    pd = _pandas()
    future = pd.date_range(start=prepared.last, periods=prediction_length + 1, freq=prepared.offset)[1:]
    future.name = prepared.index_name
    data: Dict[Tuple[Any, str], Any] = {}
    for v, name in enumerate(prepared.names):
        data[(name, "mean")] = forecast.mean[v]
        if forecast.median is not None:
            data[(name, "median")] = forecast.median[v]
        for level, values in forecast.quantiles.items():
            data[(name, statistic_name(level))] = values[v]
    out = pd.DataFrame({i: values for i, values in enumerate(data.values())}, index=future)
    out.columns = pd.MultiIndex.from_tuples(list(data), names=["variate", "statistic"])
    out.attrs["toto"] = {
        "model": forecast.model,
        "timing": forecast.timing,
        "series_id": forecast.series_id,
        "freq": prepared.offset.freqstr,
    }
    return out
