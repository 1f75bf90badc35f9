"""What `mgfm infer` accepts before any model runs: video ids from file names, folders, and models folders
(missing, another format, another keypoint layout or joint subset: errors naming the file and the mismatch)."""

from __future__ import annotations

import json

import pytest

from mgfm.core.layout import UPPER_BODY
from mgfm.infer.bundle import BundleError, load_spotter
from mgfm.infer.video_files import safe_id, video_ids
from tests.support.infer import spotter_fields


def test_video_ids_are_file_name_safe_unique_and_folders_are_listed(tmp_path):
    taken: set[str] = set()
    assert safe_id("/x/My Talk (1).mp4", taken) == "My_Talk__1_"
    assert safe_id("/y/My Talk (1).mkv", taken) == "My_Talk__1_-2"
    assert safe_id("/z/..hidden.mp4", set()) == "hidden"
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "b.MKV").write_bytes(b"")
    assert video_ids(["/data/c.mov"], str(tmp_path)) == {"c": "/data/c.mov", "a": str(tmp_path / "a.mp4"),
                                                         "b": str(tmp_path / "b.MKV")}
    with pytest.raises(ValueError, match="both become video id 'a'"):
        video_ids(["/other/a.mkv"], str(tmp_path))
    with pytest.raises(FileNotFoundError, match="infer.video_dir"):
        video_ids([], str(tmp_path / "missing"))


def _spotter(tmp_path, **change):
    (tmp_path / "spotter.json").write_text(json.dumps(spotter_fields(**change)))
    return tmp_path


def test_models_folder_errors_name_the_file_and_the_mismatch(tmp_path):
    with pytest.raises(BundleError, match="models folder not found"):
        load_spotter(tmp_path / "nope")
    with pytest.raises(BundleError, match=r"spotter.json: spotter description .* not found"):
        load_spotter(tmp_path)
    with pytest.raises(BundleError, match="spotter.json: format 'x'"):
        load_spotter(_spotter(tmp_path, format="x"))
    with pytest.raises(BundleError, match="spotter.json: trained with keypoint layout 'coco-17'"):
        load_spotter(_spotter(tmp_path, layout="coco-17"))
    with pytest.raises(BundleError, match="spotter.json: trained on a joint subset of 42 joints"):
        load_spotter(_spotter(tmp_path, joints=list(UPPER_BODY)[:42]))
    with pytest.raises(BundleError, match=r"member 'joint' needs .*classifiers/skeleton/joint, which is missing"):
        load_spotter(_spotter(tmp_path, members=[{"name": "joint", "modality": "skeleton", "stream": "joint"}],
                              weights={"joint": 1.0}))
    with pytest.raises(BundleError, match=r"members: \[\] is not allowed \(minItems 1\)"):
        load_spotter(_spotter(tmp_path))
    with pytest.raises(BundleError, match=r"members \['joint'\] and fusion weights \['bone'\] must name the same"):
        load_spotter(_spotter(tmp_path, members=[{"name": "joint", "modality": "skeleton", "stream": "joint"}],
                              weights={"bone": 1.0}))
