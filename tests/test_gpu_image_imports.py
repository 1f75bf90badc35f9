"""The GPU machine's image has no jsonschema: model construction and training code must import and run without
it (validation belongs to config loading), and config loading must still validate where jsonschema is present."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.workflow import REPO

# every module the GPU check's sections build models and training steps from
GPU_PATH_MODULES = ["mgfm.models", "mgfm.models.dste", "mgfm.models.rgb.student", "mgfm.models.rgb.teacher",
                    "mgfm.train.loop", "mgfm.train.distributed", "mgfm.train.pretrain", "mgfm.train.rgb.pretrain",
                    "mgfm.train.checkpoint", "mgfm.pose.backends.onnx_backend", "mgfm.config"]


def test_gpu_path_modules_import_and_build_models_without_jsonschema():
    from mgfm.config import resolve

    arch = {k: v for k, v in resolve("pretrain", {})["model"].items() if "projector" not in k}  # every key given
    code = (
        "import sys\n"
        "sys.modules['jsonschema'] = None  # any import of it raises ImportError\n"
        f"import importlib\nfor name in {GPU_PATH_MODULES!r}:\n    importlib.import_module(name)\n"
        "from mgfm.models import DSTE, DSTEConfig\n"
        f"DSTE(DSTEConfig.from_section({arch!r}))\n"
        "import mgfm.config\n"
        "try:\n    mgfm.config.resolve('pretrain', {})\nexcept ImportError:\n    print('validation needs jsonschema')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "validation needs jsonschema" in res.stdout


def test_config_still_validates():
    from mgfm.config import ConfigError, resolve

    with pytest.raises(ConfigError, match="pretrain.train.epochs"):
        resolve("pretrain", {"train": {"epochs": "many"}})
