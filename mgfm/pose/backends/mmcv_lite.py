"""Stand-ins that let mmpose 1.x import on mmcv-lite, without torchvision (the tested mmpose environment).

mmpose imports ``mmcv.ops`` (EDPose's deformable attention) and ``torchvision.transforms`` (a visualiser's
``ToPILImage``) at package import time, for models RTMPose/RTMW never build. mmcv-lite has no compiled ops, and
PyPI's torchvision does not load beside a locally built torch. The stand-ins are installed only where the real
module is missing, and any class taken from them fails loudly when instantiated, naming what is missing.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def _failing_class(module: str, name: str, need: str) -> type:
    def fail(*args, **kwargs):
        raise RuntimeError(f"{module}.{name} is not available: it needs {need}")

    return type(name, (), {"__init__": fail, "__call__": fail})


def _find(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def install_shims() -> list[str]:
    """Register stand-ins for ``mmcv.ops`` (when mmcv has no compiled ``mmcv._ext``) and ``torchvision`` (when
    absent). Returns the names of the modules stood in for (empty with the full mmcv and a torchvision)."""
    installed = []
    if "mmcv.ops" not in sys.modules and _find("mmcv") and not _find("mmcv._ext"):
        ops = types.ModuleType("mmcv.ops")

        def missing(name: str):
            if name.startswith("__"):
                raise AttributeError(name)
            return _failing_class("mmcv.ops", name, "the full mmcv build with compiled ops (see docs/pose.md)")

        ops.__getattr__ = missing
        sys.modules["mmcv.ops"] = ops
        installed.append("mmcv.ops")
    if "torchvision" not in sys.modules and not _find("torchvision"):
        tv, tvt = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
        tvt.ToPILImage = _failing_class("torchvision.transforms", "ToPILImage", "torchvision")
        tv.transforms = tvt
        sys.modules["torchvision"], sys.modules["torchvision.transforms"] = tv, tvt
        installed.append("torchvision")
    return installed
