"""Suites: dataset, classes, black box and each explainer's settings, in named profiles, read from TOML files.

Every suite is a TOML file read with the standard library's ``tomllib``: the built-in ``mnist`` and
``fmnist`` are package data (``bench/inputs/suite_files/``), and ``--suite path/to/suite.toml`` runs a user's
own. ``quick`` is sized for a 2-core CPU (the default); ``smoke`` runs every explainer and metric family
in CI time, for pipeline and regression checks, not rankings; ``paper`` uses the papers' (or the
authors' released models') settings and is meant for a GPU. The results record which profile made them
and how it differs from ``paper``.

The format (``python -m bench suite show mnist`` prints a complete one)::

    name = "shapes"                  # required
    version = "1"                    # recorded in results; the gate compares equal versions only
    description = "..."
    explainers = ["gce", "random"]   # the default explainers (default: every built-in one)
    inherit = "mnist"                # optional: start from a built-in suite's settings and profiles

    [dataset]
    source = "image-folder:shapes"   # mnist | fmnist | colored-mnist | spurious-mnist | torchvision:PATH |
                                     # image-folder:PATH | callable:mod:fn
    classes = ["circle", "square"]   # optional: label ids, or an image folder's class names (default: all)
    channels = 3                     # optional, image folders: convert every image to 1 or 3 channels

    [black_box]                      # optional: default GCE Table 1 trained by each profile's recipe
    classifier = "my_models:SmallResNet"   # or a TorchScript file, or "gce-table1"
    weights = "resnet.pt"            # optional: without it the architecture is trained by the recipe
    output = "logits"                # or "probabilities"

    [settings.gce]                   # settings every profile shares (under each profile's own)
    n_causal = 1

    [variants.ig_short]              # an explainer of this suite only: a registered one with other defaults
    of = "integrated_gradients"      # (its fit, if any, starts from the base's seed: an ablation)
    settings = { n_steps = 10 }
    note = "IG with 10 steps"

    [profiles.quick]                 # any number of profiles; every key optional (defaults: Profile below)
    note = "what this profile is"
    classifier = { epochs = 3, batch_size = 64, lr = 0.1, momentum = 0.5, lr_decay = 0.7 }  # the recipe
    info_flow_samples = [100, 25]    # (N_alpha, N_beta) of the information-flow estimate
    sweep_queries = 500              # test images swept (sweep metrics, FID)
    saliency_queries = 200           # test images mapped (removal curves, Gini)
    randomisation_queries = 20       # of those, the cascading-randomisation check's
    fid_samples = 1000               # generated images per FID group
    latent_images = 256              # the first N val/test images of the latent metrics (default all)
    feature_epochs = 2               # the FID feature network's epochs
    feature_images = 10000           # ... and training images (default all)
    [profiles.quick.explainers.gce]
    steps = 1500

Relative paths (an image folder, a TorchScript file, weights) are relative to the suite file, and its
folder is searched, after the working directory, for the modules a ``module:callable`` names (the black
box's or the dataset's). ``inherit`` takes every table but the name, version and description. Unknown
keys, wrong types and missing files are one-line errors naming the file, the key and what was expected,
before any work; so are unknown explainer settings (``python -m bench suite show FILE`` checks them).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.inputs.blackbox import OUTPUTS, UserClassifier
from bench.inputs.classifier import ClassifierConfig
from bench.inputs.data import BUILTIN as BUILTIN_DATASETS
from bench.errors import BenchError, unknown_name
from bench.options import suite_black_box_keys

SUITE_DIR = Path(__file__).with_name("suite_files")
TABLE1 = "gce-table1"  # the suites' default black box: GCE Table 1 (bench.inputs.classifier)


@dataclass(frozen=True)
class Profile:
    name: str
    classifier: ClassifierConfig
    explainers: dict[str, dict[str, Any]]  # explainer name -> settings overriding its defaults
    info_flow_samples: tuple[int, int] = (100, 25)  # (N_alpha, N_beta) for scoring
    sweep_queries: int = 500  # test images whose counterfactual sweeps are scored (sweep metrics, FID)
    saliency_queries: int = 200  # test images whose saliency maps are scored (removal curves, Gini)
    randomisation_queries: int = 20  # of those, the images of the cascading-randomisation check
    fid_samples: int = 1000  # generated images per FID group, the same for every explainer
    latent_images: int | None = None  # the first N validation / test images of the latent metrics (None: all)
    feature_epochs: int = 2  # epochs of the FID feature network (part of its cache key)
    feature_images: int | None = None  # train the FID feature network on the first N training images (None: all)
    note: str = ""


@dataclass(frozen=True)
class Suite:
    name: str
    dataset: str  # a bench.inputs.data.load_dataset name: mnist, fmnist, colored-mnist, spurious-mnist, torchvision:PATH, ...
    classes: tuple | None  # label ids or class names, in label order (None: every class of the dataset)
    #: bump when anything that changes the numbers changes (recorded in results; the gate compares only equal
    #: versions). Not part of cache keys: a fit is keyed by its settings, data, seed and source, so a metric
    #: change bumps the version without retraining anything.
    version: str
    description: str
    default_explainers: tuple[str, ...]
    profiles: dict[str, Profile] = field(default_factory=dict)
    channels: int | None = None  # image folders: convert to this many channels
    black_box: UserClassifier | None = None  # None: GCE Table 1 trained by the profile's recipe
    path: Path | None = None  # the file it was read from
    #: name -> (registered explainer, its settings, a note): explainers that exist in this suite only
    variants: dict[str, tuple[str, dict, str]] = field(default_factory=dict)

    def explainer_class(self, name: str):
        """The class of explainer ``name``: one of the suite's variants, or a registered explainer (a
        LookupError naming the known ones for neither)."""
        from explainers.registry import EXPLAINERS, variant

        if name in self.variants:
            of, settings, note = self.variants[name]
            return variant(EXPLAINERS.get(of), name, settings, note)
        return EXPLAINERS.get(name)

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise unknown_name("profile", name, self.profiles)
        return self.profiles[name]

    def key(self) -> dict:
        """What identifies the suite's data and labels (part of every cache key; the version is not)."""
        key = {"suite": self.name, "dataset": self.dataset, "classes": self.classes}
        return key if self.channels is None else {**key, "channels": self.channels}


# ----------------------------------------------------------------------------- reading a file

_TOP = {"name": str, "version": str, "description": str, "explainers": list, "inherit": str, "dataset": dict,
        "black_box": dict, "settings": dict, "profiles": dict, "variants": dict}
_VARIANT = {"of": str, "settings": dict, "note": str}
_DATASET = {"source": str, "classes": list, "channels": int}
_BLACK_BOX = suite_black_box_keys()  # the options that a [black_box] table sets too (bench.options)
_PROFILE = {"note": str, "classifier": dict, "explainers": dict, "info_flow_samples": list, "sweep_queries": int,
            "saliency_queries": int, "randomisation_queries": int, "fid_samples": int, "latent_images": int,
            "feature_epochs": int, "feature_images": int}
_CLASSIFIER = {f.name: (int if f.type == "int" else float) for f in fields(ClassifierConfig)}
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", list: "an array", dict: "a table"}


class _File:
    """One suite file's one-line errors: ``suite file X: [table] key ...``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, where: str, message: str) -> BenchError:
        return BenchError(f"suite file {self.path}: {where + ' ' if where else ''}{message}")

    def check(self, table: dict, spec: dict[str, type], where: str, required: tuple[str, ...] = ()) -> dict:
        """Unknown keys, wrong types and missing required keys of ``table`` (in ``where``)."""
        label = f"[{where}]" if where else "top level"
        for key, value in table.items():
            if key not in spec:
                raise self.error("", f"unknown key {key!r} in {label}; expected one of {', '.join(spec)}")
            want = spec[key]
            ok = isinstance(value, want) and not (want in (int, float) and isinstance(value, bool))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            if not ok:
                raise self.error("", f"{label} {key} must be {_TYPE_NAMES[want]}, got {value!r}")
        for key in required:
            if key not in table:
                raise self.error("", f"{label} needs {key!r}")
        return table

    def relative(self, value: str) -> str:
        """A path relative to the suite file, made absolute (absolute and ~ paths as they are)."""
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (self.path.parent / path).resolve())


def _merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``, tables merged key by key (``dataset`` and ``black_box`` replaced whole)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("dataset", "black_box"):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise BenchError(f"suite file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"suite file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise BenchError(f"suite file {path} cannot be read ({exc.strerror or exc})") from None


def _dataset(f: _File, table: dict) -> tuple[str, tuple | None, int | None]:
    f.check(table, _DATASET, "dataset", required=("source",))
    source = table["source"]
    kind = source.split(":", 1)[0] if ":" in source else source
    if kind in ("torchvision", "image-folder"):
        folder = f.relative(source.split(":", 1)[1])
        if not Path(folder).is_dir():
            raise f.error("", f"[dataset] source {source!r}: no such folder {folder}")
        source = f"{kind}:{folder}"
    elif kind == "callable":
        if source.count(":") != 2:
            raise f.error("", f"[dataset] source {source!r}: expected callable:module:function")
    elif source not in BUILTIN_DATASETS:
        raise f.error("", f"[dataset] source {source!r}: expected {', '.join(BUILTIN_DATASETS)}, torchvision:PATH, "
                          "image-folder:PATH or callable:module:function")
    classes = table.get("classes")
    if classes is not None:
        if not classes or not all(isinstance(c, (int, str)) and not isinstance(c, bool) for c in classes):
            raise f.error("", "[dataset] classes must be a non-empty array of label ids or class names")
        if len(set(classes)) != len(classes):
            raise f.error("", f"[dataset] classes names a class twice: {classes}")
        if len(classes) < 2:
            raise f.error("", "[dataset] classes needs at least two classes (a black box chooses between them)")
        classes = tuple(classes)
    channels = table.get("channels")
    if channels not in (None, 1, 3):
        raise f.error("", f"[dataset] channels must be 1 or 3, got {channels!r}")
    if channels is not None and kind != "image-folder":
        raise f.error("", "[dataset] channels converts an image folder's images; this source has its own")
    if classes is not None and kind in (*BUILTIN_DATASETS, "torchvision") and not all(
            isinstance(c, int) for c in classes):
        raise f.error("", f"[dataset] classes of {source!r} are label ids (integers), got {list(classes)}")
    return source, classes, channels


def _black_box(f: _File, table: dict) -> UserClassifier | None:
    f.check(table, _BLACK_BOX, "black_box")
    source = table.get("classifier", TABLE1)
    output = table.get("output", "logits")
    if output not in OUTPUTS:
        raise f.error("", f"[black_box] output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if source == TABLE1:
        if "weights" in table or "output" in table:
            raise f.error("", f"[black_box] weights and output are for a classifier of your own, not {TABLE1}")
        return None
    weights = table.get("weights")
    if weights is not None:
        weights = f.relative(weights)
        if not Path(weights).is_file():
            raise f.error("", f"[black_box] weights {table['weights']!r}: no such file {weights}")
    if ":" not in source:  # a TorchScript file
        source = f.relative(source)
        if not Path(source).is_file():
            raise f.error("", f"[black_box] classifier {table['classifier']!r}: no such file {source}")
    elif str(f.path.parent) not in sys.path:
        sys.path.append(str(f.path.parent))  # the suite's own module sits beside it (after the working directory)
    return UserClassifier(source=source, weights=weights, output=output,
                          named_in=f"suite file {f.path}: [black_box] classifier")


def _profile(f: _File, name: str, table: dict, shared: dict[str, dict]) -> Profile:
    where = f"profiles.{name}"
    f.check(table, _PROFILE, where)
    clf = f.check(table.get("classifier", {}), _CLASSIFIER, f"{where}.classifier")
    explainers = table.get("explainers", {})
    for explainer, settings in explainers.items():
        if not isinstance(settings, dict):
            raise f.error("", f"[{where}.explainers] {explainer} must be a table of settings, got {settings!r}")
    samples = table.get("info_flow_samples", [100, 25])
    if len(samples) != 2 or not all(isinstance(n, int) and n > 0 for n in samples):
        raise f.error("", f"[{where}] info_flow_samples must be two positive integers [N_alpha, N_beta], "
                          f"got {samples!r}")
    counts = {k: table[k] for k in ("sweep_queries", "saliency_queries", "randomisation_queries", "fid_samples",
                                    "latent_images", "feature_epochs", "feature_images") if k in table}
    for key, value in counts.items():
        if value < 1:
            raise f.error("", f"[{where}] {key} must be positive, got {value}")
    merged = {n: {**shared.get(n, {}), **explainers.get(n, {})} for n in (*shared, *explainers)}
    return Profile(name=name, classifier=ClassifierConfig(**{"epochs": 3, **clf}), explainers=merged,
                   info_flow_samples=(samples[0], samples[1]), note=table.get("note", ""), **counts)


def load_suite_file(path: str | Path) -> Suite:
    """Read and check a suite file (module docstring); every problem is a one-line BenchError."""
    path = Path(path).expanduser().resolve()
    f = _File(path)
    raw = _read(path)
    f.check(raw, _TOP, "")
    if "inherit" in raw:
        base = raw["inherit"]
        if base not in builtin_names():
            raise f.error("", f"inherit {base!r}: not a built-in suite ({', '.join(builtin_names())})")
        own = ("name", "version", "description")  # the inheriting suite's own, never the base's
        raw = _merge({k: v for k, v in _read(SUITE_DIR / f"{base}.toml").items() if k not in own},
                     {k: v for k, v in raw.items() if k != "inherit"})
    f.check(raw, _TOP, "", required=("name", "dataset"))
    source, classes, channels = _dataset(f, raw["dataset"])
    box = _black_box(f, raw.get("black_box", {}))
    settings = raw.get("settings", {})
    for explainer, table in settings.items():
        if not isinstance(table, dict):
            raise f.error("", f"[settings] {explainer} must be a table of settings, got {table!r}")
    profiles = raw.get("profiles", {})
    if not profiles:
        raise f.error("", "has no [profiles.NAME] table (e.g. [profiles.quick])")
    for name, table in profiles.items():
        if not isinstance(table, dict):
            raise f.error("", f"[profiles] {name} must be a table, got {table!r}")
    explainers = raw.get("explainers")
    if explainers is not None and (not explainers or not all(isinstance(e, str) for e in explainers)):
        raise f.error("", "explainers must be a non-empty array of explainer names")
    variants = {}
    for name, table in raw.get("variants", {}).items():
        if not isinstance(table, dict):
            raise f.error("", f"[variants] {name} must be a table (of = \"ganmex_ig\", settings = {{...}}), got {table!r}")
        f.check(table, _VARIANT, f"variants.{name}", required=("of",))
        variants[name] = (table["of"], dict(table.get("settings", {})), table.get("note", ""))
    if source.startswith("callable:") and str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))  # the suite's own data module sits beside it (after the working directory)
    return Suite(name=raw["name"], dataset=source, classes=classes, version=str(raw.get("version", "1")),
                 description=raw.get("description", ""),
                 default_explainers=tuple(explainers) if explainers else BUILTIN_EXPLAINERS,
                 profiles={n: _profile(f, n, t, settings) for n, t in profiles.items()},
                 channels=channels, black_box=box, path=path, variants=variants)


# ----------------------------------------------------------------------------- the built-in suites

BUILTIN_EXPLAINERS = ("gce", "exaggeration", "svae", "ganmex_ig", "ganmex_deeplift", "pixel_blend",
                      "integrated_gradients", "saliency", "input_x_gradient", "deeplift", "gradient_shap", "occlusion",
                      "random")


def suite_dict(suite: Suite) -> dict:
    """The suite as the data of a suite file (``inherit`` resolved, relative paths made absolute)."""
    box = suite.black_box
    out: dict[str, Any] = {"name": suite.name, "version": suite.version, "description": suite.description,
                           "explainers": list(suite.default_explainers),
                           "dataset": {"source": suite.dataset,
                                       **({"classes": list(suite.classes)} if suite.classes else {}),
                                       **({"channels": suite.channels} if suite.channels else {})},
                           "black_box": ({"classifier": TABLE1} if box is None else
                                         {"classifier": box.source, **({"weights": box.weights} if box.weights else {}),
                                          "output": box.output}),
                           "profiles": {}}
    if suite.variants:
        out["variants"] = {n: {"of": of, "settings": dict(settings), **({"note": note} if note else {})}
                           for n, (of, settings, note) in suite.variants.items()}
    for name, p in suite.profiles.items():
        table = {"note": p.note, "classifier": dict(vars(p.classifier)), "info_flow_samples": list(p.info_flow_samples)}
        table.update({f.name: getattr(p, f.name) for f in fields(Profile)
                      if f.name not in ("name", "classifier", "explainers", "info_flow_samples", "note")
                      and getattr(p, f.name) is not None})
        table["explainers"] = {e: dict(settings) for e, settings in p.explainers.items()}
        out["profiles"][name] = table
    return out


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string (escapes, \\uXXXX)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def suite_toml(suite: Suite) -> str:
    """The suite as a suite file (:func:`suite_dict` in TOML): what ``suite show`` prints, and a file that
    ``--suite`` reads back to the same suite."""
    data = suite_dict(suite)
    lines = [f"# suite {suite.name}" + (f", read from {suite.path}" if suite.path else "")]
    lines += [f"{k} = {_toml_value(data[k])}" for k in ("name", "version", "description", "explainers")]
    for table in ("dataset", "black_box"):
        lines += ["", f"[{table}]", *(f"{k} = {_toml_value(v)}" for k, v in data[table].items())]
    for name, table in data.get("variants", {}).items():
        lines += ["", f"[variants.{_toml_key(name)}]", *(f"{k} = {_toml_value(v)}" for k, v in table.items())]
    for name, profile in data["profiles"].items():
        lines += ["", f"[profiles.{_toml_key(name)}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in profile.items() if k != "explainers"]
        if profile["explainers"]:
            lines += ["", f"[profiles.{_toml_key(name)}.explainers]"]
            lines += [f"{_toml_key(e)} = {_toml_value(v)}" for e, v in profile["explainers"].items()]
    return "\n".join(lines) + "\n"


def builtin_names() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.toml"))


SUITES: dict[str, Suite] = {name: load_suite_file(SUITE_DIR / f"{name}.toml") for name in builtin_names()}


def is_suite_file(name: str) -> bool:
    return name.endswith(".toml") or "/" in name or Path(name).is_file()


def get_suite(name: str) -> Suite:
    """A built-in suite by name, or a suite file by path (``*.toml``)."""
    if is_suite_file(name):
        return load_suite_file(name)
    if name not in SUITES:
        raise unknown_name("suite", name, SUITES)
    return SUITES[name]
