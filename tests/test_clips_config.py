"""The clips/skeleton/rgb config sections: closed schemas with typed, described keys; bad values name their key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mgfm.cli import main
from mgfm.config import resolve

SCHEMAS = Path(__file__).resolve().parents[1] / "mgfm" / "config" / "schemas"


@pytest.mark.parametrize("section", ["clips", "skeleton", "rgb"])
def test_schemas_are_closed_and_every_key_typed(section):
    schema = yaml.safe_load((SCHEMAS / f"{section}.schema.yaml").read_text())
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert all(v.get("description") and v.get("type") for v in props.values())


def test_resolve_rejects_bad_values_naming_the_key():
    with pytest.raises(ValueError, match="clips.quota"):
        resolve("clips", {"quota": 0})
    with pytest.raises(ValueError, match="rgb.crop"):
        resolve("rgb", {"crop": "face"})
    with pytest.raises(ValueError, match="skeleton.num_frames"):
        resolve("skeleton", {"num_frames": 2.5})
    with pytest.raises(ValueError, match="rgb.size"):
        resolve("rgb", {"size": 4})
    assert resolve("rgb", {"size": 96})["size"] == 96


def test_cli_reports_bad_input_and_exits_1(tmp_path, capsys):
    code = main(["clips", "sample", "--pose-dir", str(tmp_path), "--manifest", str(tmp_path / "none.csv"),
                 "--annotations", str(tmp_path / "none.csv"), "--seed", "1", "--out-clips",
                 str(tmp_path / "c.parquet"), "--out-stats", str(tmp_path / "s.csv")])
    assert code == 1 and not (tmp_path / "c.parquet").exists()
