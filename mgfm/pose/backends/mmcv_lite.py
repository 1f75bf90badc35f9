"""Stand-ins that let mmpose 1.x and mmdet 3.x import on mmcv-lite, without torchvision (the tested mmpose
environment).

mmpose imports ``mmcv.ops`` (EDPose's deformable attention) and ``torchvision.transforms`` (a visualiser's
``ToPILImage``) at package import time, for models RTMPose/RTMW never build; mmdet's model package imports
``mmcv.ops`` and its submodules (``mmcv.ops.nms``, RoI and deformable-conv layers) for models and post-processing
that RTMDet's forward pass never uses (its NMS runs in mgfm: ``mgfm.pose.detection``). mmcv-lite has no compiled
ops, and PyPI's torchvision does not load beside a locally built torch. The stand-ins are installed only where the
real module is missing, and any class or function taken from them fails loudly when instantiated or called,
naming what is missing, so a model that does need an op cannot be built with them.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

_OPS_NEED = "the full mmcv build with compiled ops (see docs/pose.md)"


def _failing_class(module: str, name: str, need: str) -> type:
    def fail(*args, **kwargs):
        raise RuntimeError(f"{module}.{name} is not available: it needs {need}")

    return type(name, (), {"__init__": fail, "__call__": fail})


def _find(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _stand_in_module(name: str, need: str) -> types.ModuleType:
    """A stand-in package: every public name is a failing class, submodules come from the finder below."""
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so ``from mmcv.ops.nms import batched_nms`` reaches the finder below
    module.__mgfm_stand_in__ = need

    def missing(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _failing_class(name, attr, need)

    module.__getattr__ = missing
    return module


class _StandInSubmoduleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``<package>.<submodule>`` imports with stand-ins while ``<package>`` itself is one."""

    def find_spec(self, fullname, path=None, target=None):
        parent = fullname.rpartition(".")[0]
        need = getattr(sys.modules.get(parent), "__mgfm_stand_in__", None) if parent else None
        if isinstance(need, str):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _stand_in_module(spec.name, sys.modules[spec.name.rpartition(".")[0]].__mgfm_stand_in__)

    def exec_module(self, module):
        pass


def install_shims() -> list[str]:
    """Register stand-ins for ``mmcv.ops`` and its submodules (when mmcv has no compiled ``mmcv._ext``) and
    ``torchvision`` (when absent). Returns the names of the modules stood in for (empty with the full mmcv and a
    torchvision)."""
    installed = []
    if "mmcv.ops" not in sys.modules and _find("mmcv") and not _find("mmcv._ext"):
        sys.modules["mmcv.ops"] = _stand_in_module("mmcv.ops", _OPS_NEED)
        if not any(isinstance(f, _StandInSubmoduleFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _StandInSubmoduleFinder())
        installed.append("mmcv.ops")
    if "torchvision" not in sys.modules and not _find("torchvision"):
        tv, tvt = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
        tvt.ToPILImage = _failing_class("torchvision.transforms", "ToPILImage", "torchvision")
        tv.transforms = tvt
        sys.modules["torchvision"], sys.modules["torchvision.transforms"] = tv, tvt
        installed.append("torchvision")
    return installed
