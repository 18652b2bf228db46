"""The shape of the files genexbench reads back: a run's ``results.json`` and a regression baseline.

Every reader checks a file here before it touches a field, so a hand-edited, truncated or foreign
file is one :class:`~bench.errors.BenchError` line naming the file, the field and what was expected
(``python -m bench`` exits 2), never a ``KeyError`` traceback, nor a string where a number belongs
that would show as ``n/a`` on a leaderboard.

A results record (written by the runner, :func:`bench.outputs.results.make_record`)::

    {"metadata": {"schema_version": 1, "suite": str, "profile": str, "seed": int, ...provenance},
     "results": [{"explainer": str, "metric": str, "factor": str | null, "value": number | null,
                  "unit": str | null, "higher_is_better": bool | null, "note": str}, ...,
                 {"explainer": str, "metric": null, "factor": null, "value": null, "error": str}]}

A row with ``error`` is an explainer that failed (its fit or scoring); its other fields are not
read. One (explainer, metric, factor) appears at most once. Metadata keys beyond the ones checked
are free-form provenance; those the leaderboard, report and gate read are checked for type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from bench.errors import BenchError

#: results.json schema this genexbench writes and reads
SCHEMA_VERSION = 1

Check = tuple[Callable[[Any], bool], str]  # (accepts the value?, what was expected, in words)

STRING: Check = (lambda v: isinstance(v, str), "a string")
NAME: Check = (lambda v: isinstance(v, str) and v != "", "a non-empty string")
INTEGER: Check = (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
NUMBER: Check = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")
BOOLEAN: Check = (lambda v: isinstance(v, bool), "true or false")
OBJECT: Check = (lambda v: isinstance(v, dict), "an object")
LIST: Check = (lambda v: isinstance(v, list), "a list")


def or_null(check: Check) -> Check:
    accepts, expected = check
    return (lambda v: v is None or accepts(v), f"{expected} or null")


def list_of(check: Check) -> Check:
    accepts, expected = check
    return (lambda v: isinstance(v, list) and all(accepts(x) for x in v), f"a list, each item {expected}")


def describe(value: Any) -> str:
    """A JSON value in words, short: ``the string '0.5'``, ``null``, ``an object``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"the string {value[:40] + '...' if len(value) > 40 else value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


class _Checker:
    """Checks fields of one file; the first violation raises, naming the file and the field."""

    def __init__(self, path: str | Path):
        self.path = path

    def fail(self, field: str, message: str) -> BenchError:
        return BenchError(f"{self.path}: {field} {message}")

    def value(self, obj: dict, key: str, check: Check, where: str, *, required: bool = True) -> Any:
        accepts, expected = check
        field = f"{where}.{key}" if where else key
        if key not in obj:
            if required:
                raise self.fail(field, f"is missing; expected {expected}")
            return None
        if not accepts(obj[key]):
            raise self.fail(field, f"is {describe(obj[key])}; expected {expected}")
        return obj[key]


#: metadata fields the readers use, with their type when present (the runner writes all of them)
_METADATA_OPTIONAL: dict[str, Check] = {
    "suite_version": or_null((lambda v: isinstance(v, (str, int)) and not isinstance(v, bool),
                              "a string or an integer")),
    "explainers": list_of(NAME), "code_revision": or_null(STRING), "device": OBJECT,
    "fid_features": or_null(OBJECT), "classifier": OBJECT, "versions": OBJECT,
    "timings": (lambda v: isinstance(v, dict) and all(x is None or NUMBER[0](x) for x in v.values()),
                "an object of numbers (seconds)"),
    "command": or_null(list_of(STRING)), "finished": or_null(STRING),
}

_ROW: dict[str, Check] = {"factor": or_null(STRING), "unit": or_null(STRING), "higher_is_better": or_null(BOOLEAN),
                          "note": STRING}


def validate_record(record: Any, path: str | Path) -> dict:
    """``record`` (parsed from ``path``) if it is a results record this genexbench reads, else a
    :class:`BenchError` naming the file, the first bad field (``results[3].value``) and what was expected."""
    check = _Checker(path)
    if not isinstance(record, dict):
        raise check.fail("the file", f"holds {describe(record)}; expected a genexbench results record "
                                     "(an object with metadata and results)")
    meta = check.value(record, "metadata", OBJECT, "")
    rows = check.value(record, "results", LIST, "")
    version = check.value(meta, "schema_version", INTEGER, "metadata")
    if version != SCHEMA_VERSION:
        raise check.fail("metadata.schema_version", f"is {version}; this genexbench reads schema {SCHEMA_VERSION}")
    for key, kind in (("suite", NAME), ("profile", NAME), ("seed", INTEGER)):
        check.value(meta, key, kind, "metadata")
    for key, kind in _METADATA_OPTIONAL.items():
        check.value(meta, key, kind, "metadata", required=False)
    if "classifier" in meta:  # the leaderboard's footer averages it over seeds
        check.value(meta["classifier"], "test_accuracy", or_null(NUMBER), "metadata.classifier", required=False)
    seen: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        where = f"results[{i}]"
        if not isinstance(row, dict):
            raise check.fail(where, f"is {describe(row)}; expected an object (one explainer x metric x factor)")
        explainer = check.value(row, "explainer", NAME, where)
        if "error" in row:  # a failed explainer: only its name and the error are read
            check.value(row, "error", STRING, where)
            continue
        metric = check.value(row, "metric", NAME, where)
        check.value(row, "value", or_null(NUMBER), where)
        for key, kind in _ROW.items():
            check.value(row, key, kind, where, required=False)
        key = (explainer, metric, row.get("factor"))
        if key in seen:
            raise check.fail(where, f"repeats results[{seen[key]}] (explainer {explainer!r}, metric {metric!r}"
                                    + (f", factor {key[2]!r})" if key[2] else ")") + "; expected each once")
        seen[key] = i
    return record


def validate_baseline(baseline: dict, path: str | Path) -> dict:
    """``baseline`` (parsed from ``path``, its kind and baseline schema already checked) if every field the
    gate reads has its type, else a :class:`BenchError` naming the field (``values.gce.fid[1]``)."""
    check = _Checker(path)
    for key, kind in (("suite", NAME), ("profile", NAME), ("suite_version", _METADATA_OPTIONAL["suite_version"]),
                      ("results_schema", or_null(INTEGER)), ("seeds", list_of(INTEGER)),
                      ("values", OBJECT)):
        check.value(baseline, key, kind, "")
    for key, kind in (("tolerance", or_null(STRING)), ("devices", list_of(STRING)),
                      ("code_revisions", list_of(STRING)), ("created", STRING), ("made_by", STRING)):
        check.value(baseline, key, kind, "", required=False)
    for explainer, metrics in baseline["values"].items():
        where = f"values.{explainer}"
        if not isinstance(metrics, dict):
            raise check.fail(where, f"is {describe(metrics)}; expected an object of metric -> values per seed")
        for metric, values in metrics.items():
            if not isinstance(values, list):
                raise check.fail(f"{where}.{metric}", f"is {describe(values)}; expected a list of numbers or null, "
                                                      "one per baseline seed")
            for j, value in enumerate(values):
                if not or_null(NUMBER)[0](value):
                    raise check.fail(f"{where}.{metric}[{j}]", f"is {describe(value)}; expected a number or null")
    return baseline
