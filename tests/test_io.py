"""Atomic writes of single files, folders and bundles (`keras_compress._io`)."""

import os
import stat

import pytest

from keras_compress import _io


def test_bundle_into_a_new_folder(tmp_path):
    out = os.path.join(tmp_path, "bundle")
    assert _io.write_bundle(out, {"a.h": "text", "a.tflite": b"\x00\x01"}) is True
    assert sorted(os.listdir(out)) == ["a.h", "a.tflite"]
    with open(os.path.join(out, "a.tflite"), "rb") as f:
        assert f.read() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["bundle"]  # no temporary folder left


def test_bundle_swap_keeps_other_files_and_the_folder_mode(tmp_path):
    out = os.path.join(tmp_path, "bundle")
    os.mkdir(out)
    os.chmod(out, 0o750)
    with open(os.path.join(out, "main.cc"), "w") as f:
        f.write("user")
    _io.write_bundle(out, {"a.h": "old", "a.c": "old"})
    assert _io.write_bundle(out, {"a.h": "new", "a.c": "new"}) is True
    assert sorted(os.listdir(out)) == ["a.c", "a.h", "main.cc"]
    for name, text in (("main.cc", "user"), ("a.h", "new"), ("a.c", "new")):
        with open(os.path.join(out, name)) as f:
            assert f.read() == text
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o750
    assert os.listdir(tmp_path) == ["bundle"]


def test_bundle_in_a_folder_with_subfolders_renames_file_by_file(tmp_path):
    out = os.path.join(tmp_path, "src")
    os.makedirs(os.path.join(out, "lib"))
    inode = os.stat(out).st_ino
    assert _io.write_bundle(out, {"a.h": "new"}) is False
    assert os.stat(out).st_ino == inode  # the folder itself was kept
    assert sorted(os.listdir(out)) == ["a.h", "lib"]


def test_bundle_through_a_symlinked_folder_keeps_the_link(tmp_path):
    real = os.path.join(tmp_path, "real")
    os.mkdir(real)
    link = os.path.join(tmp_path, "link")
    os.symlink(real, link)
    assert _io.write_bundle(link, {"a.h": "new"}) is False
    assert os.path.islink(link) and os.listdir(real) == ["a.h"]


def test_failed_bundle_leaves_the_previous_one(tmp_path):
    out = os.path.join(tmp_path, "bundle")
    _io.write_bundle(out, {"a.h": "old"})
    with pytest.raises(TypeError):
        _io.write_bundle(out, {"a.h": "new", "a.c": 3})  # not bytes or str
    assert os.listdir(out) == ["a.h"]
    with open(os.path.join(out, "a.h")) as f:
        assert f.read() == "old"
    assert os.listdir(tmp_path) == ["bundle"]


def test_replace_dir_swaps_a_folder_whole(tmp_path):
    out, new = os.path.join(tmp_path, "out"), os.path.join(tmp_path, "new")
    os.mkdir(out)
    os.mkdir(new)
    open(os.path.join(out, "old.txt"), "w").close()
    open(os.path.join(new, "new.txt"), "w").close()
    _io.replace_dir(new, out)
    assert os.listdir(out) == ["new.txt"]
    assert os.listdir(tmp_path) == ["out"]
