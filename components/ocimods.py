"""Load only the ``pulumi_oci`` modules the program uses (issue 12: plan start-up).

``import pulumi_oci`` is cheap: every service package (``pulumi_oci.core``, ``pulumi_oci.mysql``, ...) is a lazy module
(``pulumi._utils.lazy_import``) that runs its ``__init__.py`` on first attribute access. That ``__init__.py`` then
imports *every* resource and function module of the service (pulumi_oci 5.5.0: ~250 in ``core``, ~40 in ``mysql``),
although the lab declares eight kinds of resource. ``use(service, *modules)`` instead turns the service's lazy module
into a plain package whose ``__init__.py`` has not run, imports only the named submodules (each pulls in the service's
``_inputs`` and ``outputs``, which hold the ``...Args`` types) and exports their public names on the package, exactly
as ``from .<module> import *`` in the package's ``__init__.py`` would. ``oci.core.Vcn`` then is the very class a full
import gives.

Nothing is lost: the first access to a name that no loaded submodule exports runs the package's own ``__init__.py``
on the same module object (the full import, as without this module), so code that uses a class it did not declare
with ``use`` still works, only slower. Where the package is already fully imported, or is not the lazy module this
expects (another pulumi_oci or pulumi release), ``use`` falls back to the plain import.

Each component declares what it uses next to its imports: ``ocimods.use("core", "vcn", "subnet", ...)``; the module
names are the file names under ``pulumi_oci/<service>/`` (``Vcn`` lives in ``vcn.py``, ``get_images_output`` in
``get_images.py``). ``tests/test_startup.py`` proves in a fresh interpreter that an offline plan loads no other one.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import types
from typing import Any

import pulumi_oci

_MARK = "_oci_dblab_partial"  # set in a package's namespace while only some of its submodules are loaded
_lock = threading.RLock()


def _export(package: types.ModuleType, module: types.ModuleType) -> None:
    """``from .<module> import *`` into ``package`` (the names the module's ``__all__`` lists)."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        setattr(package, name, getattr(module, name))


def _complete(package: types.ModuleType) -> None:
    """Run the package's own ``__init__.py`` on this module object: the full import, as if ``use`` had not run.
    Submodules already imported are reused, so every class keeps its identity."""
    with _lock:
        if _MARK not in vars(package):
            return
        del package.__dict__[_MARK]
        package.__dict__.pop("__getattr__", None)
        package.__spec__.loader.exec_module(package)  # type: ignore[union-attr]


def _make_getattr(package: types.ModuleType) -> Any:
    submodules = frozenset(n.removesuffix(".py") for d in package.__path__ for n in os.listdir(d) if n[:2] != "__")

    def __getattr__(name: str) -> Any:  # called only for names not yet on the package
        if name.startswith("__"):
            raise AttributeError(name)
        if name in submodules:  # `from . import outputs` in a submodule, or `oci.core.vcn`: just that file
            return importlib.import_module(f"{package.__name__}.{name}")
        _complete(package)
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {package.__name__!r} has no attribute {name!r}") from None

    return __getattr__


def _partial_package(service: str) -> types.ModuleType | None:
    """``pulumi_oci.<service>`` as a package whose ``__init__.py`` has not run; None if it already ran (or the
    package is not the lazy module expected: then the caller imports it the ordinary way)."""
    full = f"pulumi_oci.{service}"
    package = sys.modules.get(full)
    if package is None:
        return None
    if type(package) is types.ModuleType:  # type() does not trigger a lazy load
        return package if _MARK in vars(package) else None
    lazy_type = type(package)
    if lazy_type.__name__ != "_LazyModule" or not hasattr(package, "__path__"):
        return None
    # pulumi._utils._LazyLoader.exec_module already restored the real loader on the spec; clearing the class is
    # what _LazyModule itself does before it loads. The module object stays the one pulumi_oci.<service> names.
    package.__class__ = types.ModuleType
    package.__dict__[_MARK] = True
    package.__dict__["__getattr__"] = _make_getattr(package)
    return package


def use(service: str, *modules: str) -> types.ModuleType:
    """``pulumi_oci.<service>`` with at least ``modules`` (file names under ``pulumi_oci/<service>/``) loaded and
    their public names on the package. Returns the package (the object ``pulumi_oci.<service>`` names)."""
    with _lock:
        package = _partial_package(service)
        if package is None:
            return importlib.import_module(f"pulumi_oci.{service}")
        for name in ("_inputs", *modules):
            _export(package, importlib.import_module(f"{package.__name__}.{name}"))
        outputs = importlib.import_module(f"{package.__name__}.outputs")
        package.outputs = outputs
        return package


def loaded_submodules(service: str) -> list[str]:
    """Submodules of ``pulumi_oci.<service>`` that are really imported (not just registered as lazy)."""
    prefix = f"pulumi_oci.{service}."
    return sorted(
        name.removeprefix(prefix)
        for name, mod in list(sys.modules.items())
        if name.startswith(prefix) and type(mod) is types.ModuleType
    )


__all__ = ["use", "loaded_submodules", "pulumi_oci"]
