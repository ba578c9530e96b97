"""Your own table (``data=table``): a CSV or Parquet file with one row per example and a label column.

Keys (``configs/data/table.yaml`` holds their defaults):

- ``path``: a ``.csv`` file (also ``.csv.gz``, ``.csv.bz2``, ``.csv.zip``, ``.csv.xz``), read with
  ``pandas.read_csv``, or a ``.parquet`` / ``.pq`` file, read with pandas through pyarrow.
- ``target``: the label column. Labels may be integers or strings (class order: see
  :mod:`focalbench.data.own`). A row without a label is an error, and so is a column that looks continuous
  or like an identifier (numbers with a fractional part, or more distinct values than half the rows or
  1,000) unless ``max_classes`` allows it.
- ``max_classes``: null (the default: the automatic rule above) or the most classes the target may have;
  setting it accepts any target with at most that many distinct values as classes.
- ``features``: the feature columns; null (the default) takes every other numeric column (booleans count as
  0/1) not in ``drop``. A text column that is neither in ``categorical`` nor in ``drop`` is then an error
  naming it (it used to be left out without a word); a non-numeric column that ``features`` names is an
  error too.
- ``drop``: columns to leave out (an identifier, free text); default none. ``data info`` and the record list
  them as ``ignored``.
- ``categorical``: columns to one-hot encode (one 0/1 input per category of the training file, named
  ``column=value``; a category only in the test file encodes as all zeros). They are features whether or not
  ``features`` lists them. A missing value in one is an error naming the column and its count, unless
  ``missing_as_category`` is true: then it is a category of its own, ``column=<missing>``.
- ``missing_as_category``: keep missing values of categorical columns as their own category (default false:
  refused). ``data info`` shows them whatever its value. Not part of the run id: a run that trains computes the
  same either way.
- ``test_path``: a test file with the same columns, used as it is; null carves ``test_fraction`` of each
  class (stratified, with the data seed).
- ``standardize``: centre and scale every input with the mean and std of the *training split* only
  (default true); a constant input is only centred.

A NaN or infinite value in a feature column is an error naming the column and the first row (rows count
from 0, the header excluded). Model: ``mlp`` (vectors).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from focalbench.config import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    config_field,
    first_line,
    other_data_option_hint,
    typed_field,
)
from focalbench.data.own import (
    OwnArrays,
    SplitSettings,
    check_finite,
    check_labels_are_classes,
    encode_labels,
    file_provenance,
    file_signature,
    has_non_integer_numbers,
    max_classes_setting,
    optional_path,
    register_source,
    required_path,
    split_settings,
    string_list,
)
from focalbench.errors import ConfigError, DataError

MISSING_CATEGORY = "<missing>"
COLUMNS_SHOWN = 60  # a missing column's message lists the file's columns, up to this many


def table_format(path: Path) -> str:
    """``"csv"`` or ``"parquet"`` from the file name; ConfigError for anything else."""
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise ConfigError(
        f"data.path={path}: not a table file; data=table reads {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
        f"{other_data_option_hint(path, 'table')}"
    )


def read_frame(path: Path):
    """The file as a pandas DataFrame (string column names); DataError in one line if it cannot be read."""
    import pandas as pd

    kind = table_format(path)
    if kind == "csv":
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: empty file, no header row with column names") from None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable CSV file ({first_line(exc)})") from None
    else:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
        try:
            frame = pd.read_parquet(path, engine="pyarrow")
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...: all mean "not a Parquet file"
            raise DataError(f"{path}: not a Parquet file ({first_line(exc)})") from None
    frame.columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise DataError(f"{path}: the table has no rows")
    return frame


def _is_numeric(series) -> bool:
    from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype

    return (is_numeric_dtype(series) or is_bool_dtype(series)) and not is_complex_dtype(series)


def _quoted(names) -> str:
    names = list(names)
    shown = ", ".join(f"'{n}'" for n in names[:8])
    return shown + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def closest_column(name: str, columns: list[str]) -> str | None:
    """The column ``name`` most likely meant: the same name in another case (``type`` -> ``Type``), else the
    closest spelling; None when nothing is close."""
    import difflib

    by_lower = {c.lower(): c for c in columns}
    hint = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[hint[0]] if hint else None


def missing_column_message(where: str, names: list[str], columns: list[str], keys: str) -> str:
    """'no column' naming the columns asked for, the closest real one, and every column the file has (up to
    :data:`COLUMNS_SHOWN`): the right one must not hide behind 'and 2 more'."""
    hint = closest_column(names[0], columns)
    did_you_mean = f"; did you mean '{hint}'?" if hint else ""
    shown = ", ".join(f"'{c}'" for c in columns[:COLUMNS_SHOWN])
    more = f" and {len(columns) - COLUMNS_SHOWN} more" if len(columns) > COLUMNS_SHOWN else ""
    return f"{where}: no column {_quoted(names)} ({keys}); its {len(columns)} columns are {shown}{more}{did_you_mean}"


def choose_columns(frame, target: str, features, categorical, drop, where: str):
    """``(numeric columns, categorical columns, dropped columns, text columns)`` (rules in the module
    docstring); the text columns are those neither categorical nor dropped, which :func:`read_table` refuses
    (after the target's own checks, which matter more)."""
    columns = list(frame.columns)
    if target not in columns:
        raise DataError(missing_column_message(where, [target], columns, "data.target"))
    categorical = list(dict.fromkeys(categorical or ()))
    drop = list(dict.fromkeys(drop or ()))
    wanted = list(dict.fromkeys([*(features or ()), *categorical]))
    missing = [c for c in [*wanted, *drop] if c not in columns]
    if missing:
        keys = "data.features / data.categorical / data.drop"
        raise DataError(missing_column_message(where, missing, columns, keys))
    if target in wanted:
        raise ConfigError(
            f"data.target={target} is also listed as a feature; a label column cannot be an input"
        )
    both = [c for c in drop if c in wanted or c == target]
    if both:
        raise ConfigError(
            f"data.drop lists {_quoted(both)}, which data.target, data.features or data.categorical uses"
        )
    if features is None:
        others = [c for c in columns if c != target and c not in categorical and c not in drop]
        numeric = [c for c in others if _is_numeric(frame[c])]
        text = [c for c in others if not _is_numeric(frame[c])]
    else:
        numeric = [c for c in dict.fromkeys(features) if c not in categorical]
        text = []  # the columns data.features leaves out are left out by name
        bad = [c for c in numeric if not _is_numeric(frame[c])]
        if bad:
            raise DataError(
                f"{where}: feature column(s) {_quoted(bad)} are not numeric; list them in data.categorical "
                f"to one-hot encode them, or leave them out of data.features"
            )
    if not numeric and not categorical and not text:
        raise DataError(
            f"{where}: no feature column: every column but '{target}' is dropped ({_quoted(drop)})"
        )
    return numeric, categorical, drop, text


def missing_counts(frame, columns) -> dict[str, int]:
    """``{column: number of missing values}`` of the ``columns`` of ``frame`` that have any."""
    counts = {c: int(frame[c].isna().sum()) for c in columns}
    return {c: n for c, n in counts.items() if n}


def _category_values(series) -> np.ndarray:
    return series.astype("string").fillna(MISSING_CATEGORY).to_numpy(dtype=object).astype(str)


def encode_features(frame, numeric, categorical, categories: dict, where: str):
    """float32 ``[N, F]`` inputs and their names: the numeric columns, then each one-hot block."""
    blocks, names = [], []
    if numeric:
        try:
            blocks.append(frame[numeric].to_numpy(dtype=np.float64, na_value=np.nan))
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{where}: cannot read the feature columns as numbers ({first_line(exc)})"
            ) from None
        names += numeric
    for column in categorical:
        values = _category_values(frame[column])
        levels = np.asarray(categories[column], dtype=str)
        blocks.append((values[:, None] == levels[None, :]).astype(np.float64))
        names += [f"{column}={level}" for level in categories[column]]
    x = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))
    check_finite(x, where, names)
    x32 = x.astype(np.float32)
    check_finite(x32, where, names)  # a value beyond float32's range
    return x32, tuple(names)


def _labels(frame, target: str, where: str) -> np.ndarray:
    column = frame[target]
    if column.isna().any():
        first = int(np.flatnonzero(column.isna().to_numpy())[0])
        raise DataError(
            f"{where}: {int(column.isna().sum())} rows have no label in column '{target}' (first: row {first})"
        )
    if _is_numeric(column):
        return column.to_numpy(dtype=bool if column.dtype == bool else np.float64)
    return column.astype(str).to_numpy(dtype=object).astype(str)


@functools.lru_cache(maxsize=4)
def _read_table_cached(signature, test_signature, target, features, categorical, drop) -> OwnArrays:
    path = Path(signature[0])
    frame = read_frame(path)
    numeric, categorical, ignored, text = choose_columns(
        frame, target, features, categorical, drop, str(path)
    )
    categories = {c: sorted(set(_category_values(frame[c]).tolist())) for c in categorical}
    missing = missing_counts(frame, categorical)
    x, names = encode_features(frame, numeric, categorical, categories, str(path))
    y = _labels(frame, target, str(path))
    x_test = y_test = test_provenance = None
    if test_signature is not None:
        test_path = Path(test_signature[0])
        test_frame = read_frame(test_path)
        lacking = [c for c in [target, *numeric, *categorical] if c not in test_frame.columns]
        if lacking:
            raise DataError(f"{test_path}: the test file lacks column(s) {_quoted(lacking)} of {path.name}")
        x_test, _ = encode_features(test_frame, numeric, categorical, categories, str(test_path))
        y_test = _labels(test_frame, target, str(test_path))
        test_provenance = file_provenance(test_signature)
        for column, n in missing_counts(test_frame, categorical).items():
            missing[column] = missing.get(column, 0) + n
    codes, test_codes, class_names = encode_labels(
        y, y_test, str(path), None if test_signature is None else test_signature[0]
    )
    extra = {
        "target": target,
        "features": {
            "n_inputs": int(x.shape[1]),
            "numeric": list(numeric),
            "categorical": {c: len(categories[c]) for c in categorical},
            "ignored": list(ignored),
        },
    }
    if missing:  # only then, so that the records of complete tables stay as they were
        extra["features"]["missing"] = missing
    if text:  # refused by read_table, so never in a record
        extra["features"]["text"] = text
    return OwnArrays(
        x=x,
        y=codes,
        x_test=x_test,
        y_test=test_codes,
        class_names=class_names,
        label_order="sorted distinct labels (numbers ascending, strings alphabetically)",
        provenance=file_provenance(signature),
        test_provenance=test_provenance,
        feature_names=names,
        extra=extra,
        non_integer_labels=has_non_integer_numbers(y)
        or (y_test is not None and has_non_integer_numbers(y_test)),
    )


def check_text_columns(arrays: OwnArrays, where: str) -> None:
    """DataError naming the text columns that are neither categorical nor dropped: such a column may well be
    the most useful input, and it used to be left out without a word."""
    text = arrays.extra["features"].get("text") or []
    if text:
        listed = ",".join(text)
        raise DataError(
            f"{where}: text column(s) {_quoted(text)} are not numeric; one-hot encode them with "
            f"data.categorical=[{listed}] or leave them out with data.drop=[{listed}]"
        )


def check_missing_categories(arrays: OwnArrays, allowed: bool, where: str) -> None:
    """DataError naming the categorical columns with missing values, unless ``data.missing_as_category`` is
    true: a missing value would otherwise become a category of its own without a word."""
    missing = arrays.extra["features"].get("missing") or {}
    if missing and not allowed:
        shown = ", ".join(f"'{c}' ({n} row{'s' if n != 1 else ''})" for c, n in missing.items())
        first = next(iter(missing))
        raise DataError(
            f"{where}: categorical column(s) {shown} have missing values, which would be the category "
            f"'{first}={MISSING_CATEGORY}'; fill them, or keep them as that category with "
            f"data.missing_as_category=true"
        )


def read_table(cfg) -> tuple[OwnArrays, SplitSettings, str]:
    """The table ``cfg`` names, parsed (cached per file signature and column choice), its split settings and
    the file's name for messages."""
    path = required_path(cfg, "path", "the CSV or Parquet file to read (data.path=my_data.csv)")
    table_format(path)
    target = config_field(cfg, "target", missing=f"data.target is required: the label column of {path}")
    if isinstance(target, bool) or not isinstance(target, (str, int)):
        raise ConfigError(f"wrong type for 'data.target': {target!r} is not a column name")
    target = str(target)
    test_path = optional_path(cfg, "test_path")
    if test_path is not None:
        table_format(test_path)
    features = string_list(cfg, "features")
    categorical = string_list(cfg, "categorical") or ()
    drop = string_list(cfg, "drop") or ()
    typed_field(cfg, "standardize", bool, "data")
    missing_allowed = typed_field(cfg, "missing_as_category", bool, "data")
    max_classes = max_classes_setting(cfg)
    settings = split_settings(cfg)
    signature = file_signature(path)
    test_signature = None if test_path is None else file_signature(test_path, "test file")
    arrays = _read_table_cached(signature, test_signature, target, features, categorical, drop)
    # The refusals, the most fundamental first: a wrong target makes the columns moot.
    check_labels_are_classes(arrays, max_classes, str(path), f"the target column '{target}'")
    check_text_columns(arrays, str(path))
    check_missing_categories(arrays, missing_allowed, str(path))
    return arrays, settings, str(path)


register_source(
    "table",
    "your own CSV or Parquet table (data.path, data.target)",
    "vector",
    read_table,
    lambda cfg: {"standardize": bool(cfg.standardize)},
)
