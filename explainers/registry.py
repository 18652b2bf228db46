"""The registry of explainers: name -> class, discovered on first use, with "did you mean" on a miss.

Built-in explainers register themselves with :func:`register` when :mod:`explainers` is discovered;
plugins (``--plugin``) and installed entry points (``genexbench.explainers``) join them.
:meth:`Registry.temporarily` and :meth:`Registry.isolated` register for a block only (tests, notebooks).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from explainers.base import Explainer


# Errors here are the standard ones (ValueError for a bad setting or name, LookupError for an unknown one,
# ImportError / FileNotFoundError for a plugin); the runner and the command line turn them into one-line errors.


def did_you_mean(kind: str, name: str, known: Iterable[str]) -> str:
    """``unknown <kind> 'x'; did you mean 'y'?`` (or the known names when nothing is close)."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    return f"unknown {kind} {name!r}; {hint}"


class UnknownName(LookupError):
    """A name no registry holds; ``str()`` is the whole message (KeyError's would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry:
    """Name -> class, with "did you mean" on a miss.

    Rejects duplicate names and classes of the wrong base (torch-fidelity's
    registry; lm-eval's ``api/registry.py``). Entries register themselves with
    a decorator; the modules of ``discover`` (a package) are imported on first
    use, so a new explainer is one new file and ``python -m bench --help``
    imports none of them.
    """

    def __init__(self, kind: str, base: type, discover: str | None = None,
                 entry_points: str | None = None) -> None:
        self.kind, self.base, self.discover, self.entry_points = kind, base, discover, entry_points
        self._entries: dict[str, type] = {}
        self._origins: dict[str, str] = {}
        self._discovered = discover is None and entry_points is None
        self._loading: str | None = None  # the plugin being imported, named as the origin of what it registers

    def _checked_origin(self, name: str, cls: type) -> str:
        """Where ``cls`` registered now comes from; TypeError for a class of the wrong base."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"{self.kind} {name!r} must be a subclass of {self.base.__name__}")
        return self._loading or ("built-in" if cls.__module__.startswith(f"{self.discover}.") else cls.__module__)

    def register(self, name: str, cls: type) -> None:
        origin = self._checked_origin(name, cls)
        if name in self._entries:
            if self._entries[name] is cls:
                return  # the same class again (a module imported twice): nothing to do
            raise ValueError(f"{self.kind} {name!r} from {origin} clashes with the one from "
                             f"{self._origins[name]}: rename one of them")
        self._entries[name] = cls
        self._origins[name] = origin

    def origin(self, name: str) -> str:
        """Where ``name`` comes from: ``built-in``, a plugin file or module, or an installed entry point."""
        cls = self.get(name)
        return self._origins.get(name, cls.__module__)

    @contextlib.contextmanager
    def temporarily(self, name: str, cls: type, origin: str | None = None) -> Iterator[type]:
        """``cls`` registered as ``name`` inside the block only (a test double, a notebook's explainer run by
        name). On leaving the block ``name`` is unknown again, or is again the entry it shadowed: unlike
        :meth:`register`, a name already taken is replaced for the block, not a clash. ``origin``: what
        :meth:`origin` says of it (by default what :meth:`register` would). TypeError for a class of the
        wrong base. Blocks nest; leave them in the reverse order."""
        default_origin = self._checked_origin(name, cls)
        self._discover()  # the built-ins first: one discovered later would clash with ``cls``
        shadowed = (self._entries[name], self._origins.get(name)) if name in self._entries else None
        self._entries[name], self._origins[name] = cls, origin or default_origin
        try:
            yield cls
        finally:
            if shadowed is None:
                self._entries.pop(name, None)
                self._origins.pop(name, None)
            else:
                self._entries[name] = shadowed[0]
                if shadowed[1] is None:
                    self._origins.pop(name, None)
                else:
                    self._origins[name] = shadowed[1]

    @contextlib.contextmanager
    def isolated(self, rediscover: bool = False) -> Iterator[Registry]:
        """A block whose registrations do not outlast it: whatever a plugin (:meth:`load_plugin`), a
        ``@register`` or an entry point adds inside it is gone on leaving it, and every entry is again the
        one before it (the built-ins are discovered first, so they stay). ``rediscover``: discovery runs
        again inside the block, as in a new session (entry points installed since). Yields the registry."""
        self._discover()
        entries, origins, discovered = dict(self._entries), dict(self._origins), self._discovered
        if rediscover:
            self._discovered = False
        try:
            yield self
        finally:
            self._entries.clear()
            self._entries.update(entries)
            self._origins.clear()
            self._origins.update(origins)
            self._discovered = discovered

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        if self.discover:
            package = importlib.import_module(self.discover)
            for info in pkgutil.iter_modules(package.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self.discover}.{info.name}")
        if self.entry_points:  # installed packages: [project.entry-points."genexbench.explainers"] name = "mod:Class"
            from importlib.metadata import entry_points

            for point in entry_points(group=self.entry_points):
                label = f"entry point {point.name} = {point.value} ({point.dist.name if point.dist else '?'})"
                with self._plugin(label):
                    try:
                        loaded = point.load()
                    except Exception as exc:
                        raise ImportError(f"{label} does not load: {type(exc).__name__}: {exc}") from None
                    if isinstance(loaded, type) and loaded not in self._entries.values():
                        if issubclass(loaded, self.base):
                            loaded.name = point.name  # as @register(name) would set it
                        self.register(point.name, loaded)

    @contextlib.contextmanager
    def _plugin(self, label: str) -> Iterator[None]:
        previous, self._loading = self._loading, label
        try:
            yield
        finally:
            self._loading = previous

    def load_plugin(self, spec: str) -> None:
        """Import a plugin: a ``.py`` file (``--plugin path/to/mine.py``) or an importable module
        (``--plugin pkg.module``), whose ``@register`` decorators add its explainers. Loading the same file
        or module twice registers nothing twice. FileNotFoundError for a missing file, ImportError for a
        module that does not import, ValueError for a name another explainer has; one line each."""
        self._discover()
        path = Path(spec)
        with self._plugin(spec):
            if spec.endswith(".py"):
                if not path.is_file():
                    raise FileNotFoundError(f"--plugin {spec!r}: no such file")
                module_name = "genexbench_plugin_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
                if module_name in sys.modules:
                    return
                loader_spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(loader_spec)
                sys.modules[module_name] = module  # inspect.getsource (a fit's cache key) finds it there
                try:
                    loader_spec.loader.exec_module(module)
                except ValueError as exc:  # a clash of names, raised by register
                    del sys.modules[module_name]
                    if "clashes" in str(exc):
                        raise
                    raise ImportError(f"--plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from None
                except Exception as exc:
                    del sys.modules[module_name]
                    raise ImportError(f"--plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from None
            else:
                try:
                    importlib.import_module(spec)
                except ImportError as exc:
                    raise ImportError(f"--plugin {spec!r}: cannot import it ({exc})") from None

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._entries

    def get(self, name: str) -> type:
        self._discover()
        if name not in self._entries:
            raise UnknownName(did_you_mean(self.kind, name, self._entries))
        return self._entries[name]


EXPLAINERS = Registry("explainer", Explainer, discover="explainers", entry_points="genexbench.explainers")


def variant(base: type[Explainer], name: str, settings: dict[str, Any], note: str = "") -> type[Explainer]:
    """An explainer ``name`` that is ``base`` with other default ``settings`` (a suite file's ``[variants]``:
    the GANMEX loss ablations of colored-mnist, say). It shares ``base``'s fit identity, so its fit starts
    from the same seed as the base's (an ablation differs in the settings alone), and its fit's cache key
    holds its settings. Not registered: it exists in the suite that declares it. ValueError for a setting
    ``base`` does not have."""
    unknown = sorted(set(settings) - set(base.defaults))
    if unknown:
        raise ValueError(f"variant {name} of {base.name}: unknown setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(base.defaults))}")
    described = note or ", ".join(f"{k}={v}" for k, v in settings.items())
    return type(f"{base.__name__}_{name}", (base,), {
        "name": name, "defaults": {**base.defaults, **settings}, "fit_name": base.fit_identity(),
        "__module__": base.__module__, "variant_of": base.name,
        "paper": f"{base.paper} [variant of {base.name}: {described}]"})


def register(name: str) -> Callable[[type], type]:
    """Class decorator: ``@register("gce")`` sets ``cls.name`` and registers the class."""

    def wrap(cls: type) -> type:
        cls.name = name
        EXPLAINERS.register(name, cls)
        return cls

    return wrap
