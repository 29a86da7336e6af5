"""The helper that makes `import jittor` work offline and without a GPU. These tests never import
jittor: they check the environment and the folder the helper prepares for it."""

import logging

import pytest

from transfg import jittor_env
from transfg.jittor_env import onednn_folder_name, prepare_jittor


@pytest.fixture
def fake_system(tmp_path, monkeypatch):
    """A machine with no GPU and a system oneDNN under tmp_path."""
    include = tmp_path / "usr" / "include"
    (include / "oneapi" / "dnnl").mkdir(parents=True)
    for header in ("dnnl.hpp", "dnnl.h", "dnnl_config.h", "stdlib.h"):
        (include / header).write_text("// header\n")
    library = tmp_path / "usr" / "lib" / "libdnnl.so.2"
    library.parent.mkdir(parents=True)
    library.write_bytes(b"\x7fELF")
    monkeypatch.setattr(jittor_env, "cuda_usable", lambda: False)
    monkeypatch.setattr(jittor_env, "find_system_onednn", lambda: (include, library))
    return tmp_path


def mkl_dir(home):
    return home / ".cache" / "jittor" / "mkl" / onednn_folder_name()


def test_links_system_onednn_where_jittor_looks(fake_system):
    env = {"JITTOR_HOME": str(fake_system / "home")}
    setup = prepare_jittor(env)
    target = mkl_dir(fake_system / "home")
    assert setup.onednn == "system" and setup.onednn_dir == target and not setup.cuda
    assert (target / "lib" / "libmkldnn.so").resolve() == fake_system / "usr/lib/libdnnl.so.2"
    assert (target / "include" / "dnnl.hpp").is_file()
    assert (target / "include" / "oneapi" / "dnnl").is_dir()
    # Only oneDNN's headers: -I on all of /usr/include would break libstdc++'s include_next.
    assert not (target / "include" / "stdlib.h").exists()
    assert env["nvcc_path"] == "" and "use_mkl" not in env
    assert prepare_jittor(env).onednn == "existing"  # the second call reuses the folder


def test_replaces_an_incomplete_folder(fake_system):
    target = mkl_dir(fake_system / "home")
    (target / "lib").mkdir(parents=True)  # e.g. an interrupted download
    setup = prepare_jittor({"JITTOR_HOME": str(fake_system / "home")})
    assert setup.onednn == "system" and (target / "lib" / "libmkldnn.so").exists()


def test_falls_back_to_use_mkl_0_with_one_warning(fake_system, monkeypatch, caplog):
    monkeypatch.setattr(jittor_env, "find_system_onednn", lambda: None)
    env = {"JITTOR_HOME": str(fake_system / "home")}
    with caplog.at_level(logging.WARNING, logger="transfg"):
        setup = prepare_jittor(env)
    assert setup.onednn == "off" and env["use_mkl"] == "0"
    assert len(caplog.records) == 1 and "libdnnl-dev" in caplog.records[0].getMessage()
    assert "\n" not in caplog.records[0].getMessage()


def test_falls_back_when_the_folder_cannot_be_written(fake_system, caplog):
    home = fake_system / "readonly"
    home.mkdir()
    (home / ".cache").write_text("a file where a folder should be")
    env = {"JITTOR_HOME": str(home)}
    with caplog.at_level(logging.WARNING, logger="transfg"):
        setup = prepare_jittor(env)
    assert setup.onednn == "off" and env["use_mkl"] == "0" and "cannot write" in setup.reason


def test_respects_what_the_user_set(fake_system):
    env = {"JITTOR_HOME": str(fake_system / "home"), "use_mkl": "0", "nvcc_path": "/opt/nvcc"}
    setup = prepare_jittor(env)
    assert setup.onednn == "off" and setup.cuda and env["nvcc_path"] == "/opt/nvcc"
    assert not mkl_dir(fake_system / "home").exists()


def test_keeps_cuda_when_a_gpu_is_usable(fake_system, monkeypatch):
    monkeypatch.setattr(jittor_env, "cuda_usable", lambda: True)
    env = {"JITTOR_HOME": str(fake_system / "home")}
    assert prepare_jittor(env).cuda and "nvcc_path" not in env


def test_finds_debians_onednn_on_this_machine():
    found = jittor_env.find_system_onednn()
    if found is None:
        pytest.skip("libdnnl-dev is not installed here (the set-up script installs it)")
    include, library = found
    assert (include / "dnnl.hpp").is_file() and library.is_file()


def test_a_concurrent_second_linker_leaves_the_first_folder_intact(fake_system):
    include, library = jittor_env.find_system_onednn()
    target = mkl_dir(fake_system / "home")
    target.parent.mkdir(parents=True)
    jittor_env.link_system_onednn(target, include, library)
    jittor_env.link_system_onednn(target, include, library)  # lost the race: cleans up after itself
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]
    assert (target / "lib" / "libmkldnn.so").exists() and library.exists()
