"""How every package of this suite patches: one marker, one lock, patches declared as data.

Each package's `patchers.py` lists its patch points as `Patch` entries (`"module:Owner.attribute"`,
the wrapper, and the versions it is for: `requires="ollama>=0.4"`), as Braintrust's integrations
declare one patcher class per point and OpenTelemetry's instrumentors their
`instrumentation_dependencies()`; `apply(table)` and `remove(table)` do the rest.

- **Marker**: what stands at a patch point says it is ours by its type, `Wrapper` (a
  `wrapt.FunctionWrapper` subclass): no marker attribute beside it, no private attribute of
  wrapt read. Another library's wrapper is never taken for ours (ours goes around it), and ours
  is never wrapped twice.
- **Atomic**: one lock (`LOCK`) over every patch and unpatch of every package: set-ups from many
  threads at once leave exactly one wrapper per patch point.
- **Exact**: an unpatch puts back the very object the patch replaced (or, for one instance,
  removes the attribute again).
- **Versions**: a patch is applied only where the installed distribution is at a version its
  `requires` allows (PEP 440, with `packaging`); an unmet requirement is logged once.
- Only an attribute the owner defines itself (in its `__dict__`) is patched: a subclass
  inheriting it is covered by the patch on its base, and a method that a version lacks is left
  out.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import wrapt

from ._warn import log_once, warn_once

_log = logging.getLogger(__name__)

# Every patch and unpatch holds it: a check and the patch it decides on are one step.
LOCK = threading.RLock()

WrapperFunction = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]


class Wrapper(wrapt.FunctionWrapper):
    """A wrapper this suite installed: its type is the patch marker."""


class _InstanceWrapper(Wrapper):
    """Ours on one instance, in front of its class's attribute: an unpatch deletes it."""


def is_patched(owner: Any, name: str) -> bool:
    """True when `owner` (a class, module or instance) holds our wrapper as its own `name`."""
    return isinstance(vars(owner).get(name), Wrapper)


def patch(
    owner: Any, name: str, wrapper: WrapperFunction, *, enabled: Callable[[], bool] | None = None
) -> bool:
    """Wrap `owner`'s own `name` with `wrapper` (wrapt's `(wrapped, instance, args, kwargs)`),
    unless it is ours already. False when `owner` does not define `name` itself. `enabled` is
    wrapt's switch, asked before each call: when it says no, the original runs directly."""
    with LOCK:
        own = vars(owner)
        if name not in own:
            return False
        if not isinstance(own[name], Wrapper):
            setattr(owner, name, Wrapper(own[name], wrapper, enabled=enabled))
        return True


def patch_instance(
    instance: Any, name: str, wrapper: WrapperFunction, *, enabled: Callable[[], bool] | None = None
) -> None:
    """Wrap `name` on `instance` alone (idempotent): its class's attribute (without our wrapper,
    should the class be patched too), bound to it, wrapped, in the instance's `__dict__`."""
    with LOCK:
        if is_patched(instance, name):
            return
        cls = type(instance)
        original = inspect.getattr_static(cls, name)
        if isinstance(original, Wrapper):
            original = original.__wrapped__
        bound = original.__get__(instance, cls)
        vars(instance)[name] = _InstanceWrapper(bound, wrapper, enabled=enabled)


def unpatch(owner: Any, name: str) -> bool:
    """Undo `patch` / `patch_instance` exactly. False when `name` on `owner` is not ours."""
    with LOCK:
        current = vars(owner).get(name)
        if isinstance(current, _InstanceWrapper):
            delattr(owner, name)
        elif isinstance(current, Wrapper):
            setattr(owner, name, current.__wrapped__)
        else:
            return False
        return True


def supported(requires: str) -> bool:
    """Whether the installed distribution named by `requires` (`"ollama>=0.4"`) is at a version
    it allows. True when that distribution is not installed (what it would patch cannot be
    imported either) or its version is not PEP 440. An unmet requirement is logged once."""
    # Imported here, at set-up: `import braintrust_ollama` does not pay for them.
    from packaging.requirements import Requirement
    from packaging.version import InvalidVersion, Version

    requirement = Requirement(requires)
    try:
        found = importlib.metadata.version(requirement.name)
        if requirement.specifier.contains(Version(found), prereleases=True):
            return True
    except (importlib.metadata.PackageNotFoundError, InvalidVersion):
        return True
    what = f"{requirement.name} {found} is installed, but this needs {requires}: not patching it"
    log_once(_log, what, level=logging.WARNING)
    return False


@dataclass(frozen=True)
class Patch:
    """One patch point, as data: `target` (`"module:Owner.attribute"`, or `"module:function"`)
    wrapped by `wrapper`, where the distribution shipping it satisfies `requires`."""

    target: str
    wrapper: WrapperFunction
    requires: str | None = None
    enabled: Callable[[], bool] | None = None  # wrapt's switch (see `patch`)

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def name(self) -> str:
        return self.target.partition(":")[2].rpartition(".")[2]

    def owner(self, *, load: bool = False) -> Any:
        """What holds the attribute; None while its module is not imported (with `load`: not
        importable) or defines no such owner."""
        module = sys.modules.get(self.module)
        if module is None and load:
            try:
                module = importlib.import_module(self.module)
            except ImportError:
                return None
        owner: Any = module
        for part in self.target.partition(":")[2].split(".")[:-1]:
            owner = getattr(owner, part, None)
        return owner

    def apply(self, *, load: bool = False) -> bool:
        """Patch this point (idempotent). True when it is ours, or its owner has no such
        attribute in this version; False when the owner is not there or the version is not
        one `requires` allows."""
        owner = self.owner(load=load)
        if owner is None:
            return False
        if is_patched(owner, self.name):  # the usual case, on every `wrap_ollama()`: no lock
            return True
        with LOCK:
            if is_patched(owner, self.name):
                return True
            if self.requires and not supported(self.requires):
                return False
            patch(owner, self.name, self.wrapper, enabled=self.enabled)
            return True

    def remove(self) -> bool:
        """Undo `apply` exactly; False when this point is not patched."""
        owner = self.owner()
        return owner is not None and unpatch(owner, self.name)


def apply(patches: Iterable[Patch], *, load: bool = False) -> bool:
    """Apply every patch of a table; True when each one is in place (see `Patch.apply`)."""
    return all([p.apply(load=load) for p in patches])


def remove(patches: Iterable[Patch]) -> None:
    """Undo every patch of a table that is in place."""
    for p in patches:
        p.remove()


class WhenImported:
    """Installs patches on modules as they are imported (those already imported at once) while
    it is on, without importing anything itself.

    `installers` maps a module name to what patches it, given the module. wrapt's post-import
    hooks cannot be removed: `off()` leaves them doing nothing, and the next `on()` installs again
    on every module imported by then. A failing installer is logged once (`warn_once` on `log`),
    never raised into the import that ran it.
    """

    def __init__(
        self,
        installers: Mapping[str, Callable[[ModuleType], object]],
        *,
        log: logging.Logger,
        unaffected: str,
    ) -> None:
        self._installers = dict(installers)
        self._log = log
        self._unaffected = unaffected
        self._on = False  # read by the hooks
        self._hooked: set[str] = set()
        # Not LOCK: wrapt runs a hook under its own lock, and the hook's patches take LOCK.
        self._hooking = threading.Lock()

    def on(self) -> None:
        """Install on every module imported now, and on each other one as its import finishes."""
        self._on = True
        for name in self._installers:
            module = sys.modules.get(name)
            if module is not None:
                self._install(name, module)
                continue
            with self._hooking:
                new = name not in self._hooked
                self._hooked.add(name)
            if new:  # runs at once if the module was imported meanwhile
                wrapt.register_post_import_hook(functools.partial(self._imported, name), name)

    def off(self) -> None:
        """Let the hooks do nothing until the next `on()` (the patches are the caller's to undo)."""
        self._on = False

    def _imported(self, name: str, module: ModuleType) -> None:
        if self._on:
            self._install(name, module)

    def _install(self, name: str, module: ModuleType) -> None:
        try:
            self._installers[name](module)
        except Exception:
            warn_once(self._log, f"could not patch {name}", unaffected=self._unaffected)
