"""The helper that makes `import jittor` work offline and without a GPU, and the guards that keep
Jittor from computing garbage. Most tests never import jittor: they check the environment and
the folders the helper prepares for it; those that do say so."""

import importlib.metadata
import json
import logging
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from transfg import jittor_cuda13, jittor_env
from transfg.jittor_env import (
    SITE_VARIABLE,
    JittorUnusable,
    check_round_trip,
    numpy_problem,
    onednn_folder_name,
    prepare_jittor,
    site_env,
)

PROJECT = Path(__file__).parents[2]


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
    # This machine's own nvcc stays out of these tests; the CUDA 13 layer has its own below.
    monkeypatch.setattr(jittor_env, "prepare_cuda", lambda env, cache: f"prepared under {cache}")
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
    setup = prepare_jittor(env)
    assert setup.cuda and "nvcc_path" not in env
    assert setup.cuda_detail == f"prepared under {fake_system / 'home' / '.cache' / 'jittor'}"
    assert prepare_jittor({**env, "nvcc_path": ""}).cuda_detail == "off"


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


# --- numpy: refused before jittor is imported ---

def test_numpy_2_is_refused_with_what_was_found_why_and_what_to_install():
    problem = numpy_problem("2.2.6", "/env/site-packages/numpy", "1.3.11.0", {})
    assert "numpy 2.2.6 (/env/site-packages/numpy)" in problem and "Jittor 1.3.11.0" in problem
    assert "garbage" in problem and "numpy 1.x's memory layout" in problem
    assert "pip install 'numpy>=1.24,<2'" in problem and f"{SITE_VARIABLE}=DIR" in problem
    assert "\n" not in problem  # one line: the doctor and the runner show the last line
    assert numpy_problem("2.0.0rc1", "/n", "1.3.11.0", {}) is not None
    assert numpy_problem("2.2.6", "/n", None, {}) is not None  # no metadata: assume 1.3


def test_numpy_1_and_a_later_jittor_pass_the_version_guard():
    assert numpy_problem("1.26.4", "/n", "1.3.11.0", {}) is None
    assert numpy_problem("1.24.0", "/n", "1.3.9.14", {}) is None
    # A Jittor after 1.3 is trusted with numpy 2; the round trip still checks it.
    assert numpy_problem("2.2.6", "/n", "1.4.0.0", {}) is None


def test_the_message_says_why_a_jittor_site_that_is_set_did_not_help(tmp_path):
    site = tmp_path / "site"
    (site / "numpy").mkdir(parents=True)
    env = {SITE_VARIABLE: str(site)}
    started_without = numpy_problem("2.2.6", "/env/numpy", "1.3.11.0", env)
    assert f"{SITE_VARIABLE}={site} is set" in started_without
    assert "started without that folder first on PYTHONPATH" in started_without
    wrong_numpy_there = numpy_problem("2.2.6", str(site.resolve() / "numpy"), "1.3.11.0", env)
    assert "the numpy there is 2.2.6: install numpy==1.26.4 into it" in wrong_numpy_there
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "the folder holds no numpy" in numpy_problem("2.2.6", "/env/numpy", "1.3.11.0",
                                                        {SITE_VARIABLE: str(empty)})


GUARDED_IMPORT = """
import sys, numpy
numpy.__version__ = "2.2.6"  # as a numpy 2 environment would report
try:
    import transfg.jittor
except Exception:
    print("jittor imported:", "jittor" in sys.modules)
    raise
"""


def test_import_transfg_jittor_beside_numpy_2_exits_with_the_message_and_computes_nothing():
    done = subprocess.run([sys.executable, "-c", GUARDED_IMPORT], capture_output=True, text=True,
                          timeout=120, cwd=PROJECT)
    assert done.returncode != 0
    assert done.stdout.strip() == "jittor imported: False"  # refused before jittor loads
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("transfg.jittor_env.JittorUnusable: numpy 2.2.6 (")
    assert "cannot be used with Jittor 1.3.11.0" in last


JITTOR_EXITS_ON_IMPORT = """
import sys
class RebuiltCore:  # jittor 1.3 after rebuilding jit_utils_core: sys.exit(0) inside its import
    def find_spec(self, name, path=None, target=None):
        if name == "jittor":
            raise SystemExit(0)
sys.meta_path.insert(0, RebuiltCore())
import transfg.jittor
"""


def test_jittor_exiting_during_its_import_is_an_error_not_a_silent_success():
    done = subprocess.run([sys.executable, "-c", JITTOR_EXITS_ON_IMPORT], capture_output=True,
                          text=True, timeout=120, cwd=PROJECT)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "jittor exited during its import (status 0)" in last
    assert "running the command again" in last


# --- the round trip: checked once per process after jittor is imported ---

class FakeVar:
    """A jittor Var whose way back to numpy is `back`: right, or simulated garbage."""

    def __init__(self, value, back):
        self.value, self.back = np.asarray(value), back

    def numpy(self):
        return self.back(self.value)

    def transpose(self):
        return FakeVar(self.value.T, self.back)


def fake_jittor(back):
    return SimpleNamespace(__version__="1.3.11.0", array=lambda x: FakeVar(x, back),
                           matmul=lambda a, b: FakeVar(a.value @ b.value, back))


def test_round_trip_passes_when_every_value_comes_back():
    check_round_trip(fake_jittor(lambda value: value.copy()))


@pytest.mark.parametrize("garbage, wrong", [
    (lambda v: np.frombuffer(np.random.default_rng(0).bytes(v.nbytes), v.dtype).reshape(v.shape),
     "a (2, 3) float32 array came back as"),
    (lambda v: v.ravel(), "a (2, 3) float32 array came back as"),  # right values, lost shape
    (lambda v: v + (v.dtype == np.int64), "an int64 label array came back as"),
])
def test_round_trip_fails_loudly_on_a_wrong_result(garbage, wrong):
    with pytest.raises(JittorUnusable) as error:
        check_round_trip(fake_jittor(garbage))
    message = str(error.value)
    assert wrong in message and "Every Jittor result here would be wrong" in message
    assert f"numpy {np.__version__}" in message


def test_round_trip_holds_for_the_real_jittor_here():
    """(imports jittor)"""
    import transfg.jittor  # noqa: F401  (which already ran the check once)
    import jittor  # isort: skip

    check_round_trip(jittor)


# --- TRANSFG_JITTOR_SITE: a numpy for the Jittor processes alone ---

def test_site_env_puts_the_jittor_site_first_on_pythonpath():
    assert site_env({}) == {}
    assert site_env({SITE_VARIABLE: "/site"}) == {"PYTHONPATH": "/site"}
    assert site_env({SITE_VARIABLE: "/site", "PYTHONPATH": "/a:/b"}) == {
        "PYTHONPATH": os.pathsep.join(["/site", "/a:/b"])}


def test_only_jittor_launches_get_the_site(monkeypatch):
    from audit.executors.common import launcher_env

    sys.path.insert(0, str(PROJECT / "bench"))
    try:
        from common import worker_env
    finally:
        sys.path.remove(str(PROJECT / "bench"))
    monkeypatch.setenv(SITE_VARIABLE, "/jittor-site")
    monkeypatch.setenv("PYTHONPATH", "/project")
    assert launcher_env({"framework": "jittor"})["PYTHONPATH"] == "/jittor-site:/project"
    assert "PYTHONPATH" not in launcher_env({"framework": "torch"})
    assert worker_env("jittor")["PYTHONPATH"] == "/jittor-site:/project"
    assert worker_env("torch") is None


def test_provenance_records_the_packages_a_jittor_run_sees(tmp_path):
    from audit import provenance

    info = tmp_path / "numpy-1.26.4.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: numpy\nVersion: 1.26.4\n")
    (tmp_path / "numpy").mkdir()
    assert provenance.packages(str(tmp_path))["numpy"] == "1.26.4"
    assert provenance.packages()["numpy"] == np.__version__


# --- python-config: jittor runs it for the headers' folder and the extension suffix ---

def answers(script: Path, question: str) -> str:
    return subprocess.run([str(script), question], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_python_config_standin_answers_as_the_real_one(tmp_path):
    real = next((p for p in [Path(sys.base_prefix) / "bin" /
                             f"python3.{sys.version_info.minor}-config",
                             *jittor_env.jittor_python_configs()]
                 if p.is_file() and Path(sysconfig.get_paths()["include"]) ==
                 Path(answers(p, "--includes").split()[0][2:])), None)
    if real is None:
        pytest.skip("no python-config for this interpreter's own headers here")
    standin = tmp_path / "python-config"
    standin.write_text(jittor_env.python_config_standin())
    standin.chmod(0o755)
    assert set(answers(standin, "--includes").split()) == set(answers(real, "--includes").split())
    assert answers(standin, "--extension-suffix") == answers(real, "--extension-suffix")
    refused = subprocess.run([str(standin), "--ldflags"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--ldflags is not answered" in refused.stderr


def test_python_config_found_where_jittor_does_not_look(tmp_path, monkeypatch):
    monkeypatch.setattr(jittor_env, "jittor_python_configs", lambda: [tmp_path / "missing"])
    base = tmp_path / "base"
    (base / "bin").mkdir(parents=True)
    script = base / "bin" / f"python3.{sys.version_info.minor}-config"
    script.write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "base_prefix", str(base))
    env = {}
    assert "base interpreter" in jittor_env.prepare_python_config(env)
    assert env["python_config_path"] == str(script)
    user = {"python_config_path": "/mine"}
    assert "set by the user" in jittor_env.prepare_python_config(user)
    assert user == {"python_config_path": "/mine"}


def test_python_config_standin_where_only_the_headers_exist(tmp_path, monkeypatch):
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        pytest.skip("this interpreter has no Python.h")
    monkeypatch.setattr(jittor_env, "jittor_python_configs", lambda: [tmp_path / "missing"])
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path / "no-base"))
    env = {"JITTOR_HOME": str(tmp_path / "home")}
    assert "stand-in" in jittor_env.prepare_python_config(env)
    script = Path(env["python_config_path"])
    assert script.is_relative_to(tmp_path / "home" / ".cache" / "jittor")
    assert f"-I{sysconfig.get_paths()['include']}" in answers(script, "--includes").split()
    again = {"JITTOR_HOME": str(tmp_path / "home")}
    jittor_env.prepare_python_config(again)
    assert again == env and not list(script.parent.glob("*.tmp*"))  # one script, reused


# --- in a real numpy 2 environment (downloads numpy 2 from the package registry) ---

NUMPY_2 = "2.2.6"
JITTOR_PROTOCOL = """\
version = 1
name = "numpy-site"
title = "Jittor on its own numpy"
frameworks = ["jittor"]
seeds = [0]
[paper]
title = "TransFG"
[data]
dataset = "digits"
root = "bundled"
[model]
preset = "tiny"
[train]
steps = 4
warmup_steps = 1
eval_every = 4
checkpoint_every = 4
eval_batch_size = 64
workers = 0
[arms.transfg]
"""


@pytest.fixture(scope="module")
def numpy_2_env(tmp_path_factory):
    """This interpreter with numpy 2 ahead of its own (PYTHONPATH), as a user's environment, a
    `pip install --no-deps jittor` or the GPU image would have it; and a Jittor site holding
    this environment's numpy 1 (linked, not downloaded)."""
    root = tmp_path_factory.mktemp("numpy2")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--no-deps", "--target", str(root / "numpy2"), f"numpy=={NUMPY_2}"],
                   check=True, capture_output=True)
    site = root / "jittor-site"
    site.mkdir()
    (site / "numpy").symlink_to(Path(np.__file__).parent)
    files = importlib.metadata.distribution("numpy").files
    record = next(f for f in files if f.name == "METADATA").locate().parent  # numpy's dist-info
    (site / record.name).symlink_to(record)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "numpy2"), str(PROJECT)])}
    env.pop(SITE_VARIABLE, None)
    return env, site


def in_env(env, *args, **kwargs):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=1500, cwd=PROJECT, **kwargs)


@pytest.mark.slow
def test_in_a_numpy_2_environment_jittor_is_refused_and_the_doctor_says_so(numpy_2_env):
    env, _ = numpy_2_env
    assert in_env(env, "-c", "import numpy; print(numpy.__version__)").stdout.strip() == NUMPY_2
    done = in_env(env, "-c", "import transfg.jittor")
    assert done.returncode != 0 and f"numpy {NUMPY_2}" in done.stderr.splitlines()[-1]
    doctor = in_env(env, "-m", "audit.cli", "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert doctor.returncode == 1 and checks["jittor"]["status"] == "fail"
    assert checks["jittor"]["detail"].startswith(f"refused: numpy {NUMPY_2}")


@pytest.mark.slow
def test_beside_numpy_2_the_round_trip_catches_jittors_garbage(numpy_2_env):
    """Past the version guard (as a future Jittor that claims numpy 2 would be), the round trip
    sees the wrong numbers Jittor 1.3 returns."""
    env, _ = numpy_2_env
    done = in_env(env, "-c", textwrap.dedent("""
        from transfg.jittor_env import check_round_trip, prepare_jittor
        prepare_jittor()
        import jittor
        check_round_trip(jittor)
    """))
    assert done.returncode != 0
    assert "computes wrong numbers in this process (numpy 2.2.6" in done.stderr.splitlines()[-1]


@pytest.mark.slow
def test_with_a_jittor_site_the_audit_trains_jittor_on_its_numpy(numpy_2_env, tmp_path):
    env, site = numpy_2_env
    env = {**env, SITE_VARIABLE: str(site)}
    doctor = in_env(env, "-m", "audit.cli", "doctor", "--json")
    jittor_check = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}["jittor"]
    assert jittor_check["status"] == "ok" and f"numpy {np.__version__}" in jittor_check["detail"]
    protocol = tmp_path / "numpy-site.toml"
    protocol.write_text(JITTOR_PROTOCOL)
    done = in_env(env, "-m", "audit.cli", "run", str(protocol), "--store", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (run,) = (p for p in (tmp_path / "runs").iterdir() if (p / "result.json").exists())
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["packages"]["numpy"] == np.__version__  # what the run saw, not numpy 2
    assert provenance["attempts"][-1]["jittor_site"] == str(site)


# --- CUDA 13: the layer transfg/jittor_cuda13.py builds (no CUDA needed: fake toolkits) ---

FAKE_NVCC = """#!/bin/sh
case " $* " in
  *" --version "*) echo "Cuda compilation tools, release {version}, V{version}.88" ;;
  *) for arg do echo "$arg"; done ;;
esac
"""


def fake_cuda(root: Path, version: str = "13.0", layout: str = "pip", cudnn: bool = True):
    """A CUDA installed as pip does (nvidia/cu13/{bin,include,lib}, nvidia/cudnn/...) or as a
    toolkit (cuda/{bin,include,lib64}, cuDNN from pip beside it); (nvcc, nvidia roots)."""
    major = version.split(".")[0]
    nvidia = root / "site" / "nvidia"
    home = nvidia / f"cu{major}" if layout == "pip" else root / "cuda"
    lib = home / ("lib" if layout == "pip" else "lib64")
    for folder in (home / "bin", home / "include" / "cccl" / "cub", lib):
        folder.mkdir(parents=True)
    nvcc = home / "bin" / "nvcc"
    nvcc.write_text(FAKE_NVCC.format(version=version))
    nvcc.chmod(0o755)
    (home / "include" / "cuda_runtime.h").write_text("// runtime\n")
    for name in (f"libcudart.so.{major}", f"libcublas.so.{major}", "libcublasLt.so.13"):
        (lib / name).write_bytes(b"\x7fELF")
    if cudnn:
        (nvidia / "cudnn" / "include").mkdir(parents=True)
        (nvidia / "cudnn" / "lib").mkdir(parents=True)
        (nvidia / "cudnn" / "include" / "cudnn.h").write_text("// cudnn\n")
        (nvidia / "cudnn" / "include" / "cudnn_version.h").write_text(
            "#define CUDNN_MAJOR 9\n#define CUDNN_MINOR 19\n#define CUDNN_PATCHLEVEL 0\n")
        for name in ("libcudnn.so.9", "libcudnn_ops.so.9", "libcudnn_cnn.so.9"):
            (nvidia / "cudnn" / "lib" / name).write_bytes(b"\x7fELF")
    return nvcc, [nvidia] if nvidia.is_dir() else []


@pytest.fixture
def no_system_cuda(monkeypatch):
    """This machine's own nvcc (PATH, /usr/local/cuda) out of sight."""
    monkeypatch.setattr(jittor_cuda13, "JITTOR_NVCC_PLACES", ())
    return {"PATH": ""}


def test_nvcc_versions_are_read_from_its_release_line():
    assert jittor_cuda13.parse_nvcc_version(
        "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 13.0, V13.0.88\n"
        "Build cuda_13.0.r13.0/compiler.36424714_0") == (13, 0)
    assert jittor_cuda13.parse_nvcc_version("Cuda compilation tools, release 12.4, V12.4.131"
                                            ) == (12, 4)
    assert jittor_cuda13.parse_nvcc_version("g++ (Debian 12.2.0-14) 12.2.0") is None


def test_the_pip_packages_cuda_is_found_where_jittor_would_find_none(tmp_path, no_system_cuda):
    nvcc, roots = fake_cuda(tmp_path)
    toolkit = jittor_cuda13.find_toolkit(no_system_cuda, roots)
    assert toolkit.nvcc == nvcc.resolve() and toolkit.version == (13, 0)
    assert toolkit.layout == "pip" and toolkit.needs_layer and toolkit.cudnn == "9.19.0"
    assert toolkit.include_dirs[:2] == (nvcc.parents[1] / "include",
                                        roots[0] / "cudnn" / "include")
    # nvcc_path set by the user wins, as in Jittor
    assert jittor_cuda13.find_toolkit({"nvcc_path": str(nvcc), "PATH": ""}, roots).nvcc == nvcc
    assert jittor_cuda13.find_toolkit(no_system_cuda, []) is None


def test_a_toolkit_nvcc_behind_an_exec_script_is_followed_to_its_folder(tmp_path,
                                                                         no_system_cuda):
    nvcc, roots = fake_cuda(tmp_path, layout="toolkit")
    script = tmp_path / "bin" / "nvcc"  # as /usr/local/bin/nvcc may be
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\nexec {nvcc} \"$@\"\n")
    script.chmod(0o755)
    toolkit = jittor_cuda13.find_toolkit({"PATH": str(script.parent)}, roots)
    assert toolkit.nvcc == nvcc and toolkit.layout == "toolkit"
    assert toolkit.include_dirs[0] == nvcc.parents[1] / "include"
    assert roots[0] / "cudnn" / "lib" in toolkit.library_dirs  # cuDNN from pip beside it


def test_the_layer_is_a_cuda_home_of_links_with_the_names_jittor_asks_for(tmp_path,
                                                                        no_system_cuda):
    nvcc, roots = fake_cuda(tmp_path)
    toolkit = jittor_cuda13.find_toolkit(no_system_cuda, roots)
    layer = jittor_cuda13.build_layer(toolkit, tmp_path / "cache")
    lib = layer.folder / "lib64"
    assert (lib / "libcudart.so").resolve() == nvcc.parents[1] / "lib" / "libcudart.so.13"
    assert (lib / "libcublas.so").resolve().name == "libcublas.so.13"
    # cuDNN 8's sub-libraries, which Jittor preloads, are cuDNN 9's
    assert (lib / "libcudnn_ops_infer.so").resolve().name == "libcudnn_ops.so.9"
    assert (lib / "libcudnn_cnn_train.so").resolve().name == "libcudnn_cnn.so.9"
    assert (layer.folder / "include" / "cuda_runtime.h").is_file()
    # cuDNN's header with stand-ins for the RNN functions cuDNN 9 removed
    cudnn = (layer.folder / "include" / "cudnn.h").read_text()
    assert f'#include "{roots[0] / "cudnn" / "include" / "cudnn.h"}"' in cudnn
    assert "cudnnRNNForwardTraining" in cudnn and "CUDNN_STATUS_NOT_SUPPORTED" in cudnn
    overlay = {p.name: p.read_text() for p in layer.overlay.iterdir()}
    assert list(overlay) == ["helper_cuda.h"]
    assert '#include_next "helper_cuda.h"' in overlay["helper_cuda.h"]
    assert "cudaDevAttrClockRate" in overlay["helper_cuda.h"]
    # no NPP installed: an npp.h with the eight limits Jittor's cuda_limits.h takes from it
    npp = (layer.folder / "include" / "npp.h")
    assert not npp.is_symlink()
    assert "#define NPP_MAX_32S (2147483647)" in npp.read_text()
    assert jittor_cuda13.build_layer(toolkit, tmp_path / "cache") == layer  # reused
    assert [p.name for p in layer.folder.parent.iterdir()] == [layer.folder.name]


def test_an_installed_npp_is_linked_not_replaced(tmp_path, no_system_cuda):
    nvcc, roots = fake_cuda(tmp_path)
    (nvcc.parents[1] / "include" / "npp.h").write_text("// NPP\n")
    layer = jittor_cuda13.build_layer(jittor_cuda13.find_toolkit(no_system_cuda, roots),
                                      tmp_path / "cache")
    assert (layer.folder / "include" / "npp.h").resolve() == nvcc.parents[1] / "include" / "npp.h"


def test_the_wrapper_gives_nvcc_cpp17_quote_includes_and_cccl(tmp_path, no_system_cuda):
    _, roots = fake_cuda(tmp_path)  # the fake nvcc prints the arguments it gets
    layer = jittor_cuda13.build_layer(jittor_cuda13.find_toolkit(no_system_cuda, roots),
                                      tmp_path / "cache")
    done = subprocess.run([str(layer.nvcc), "a.cu", "-std=c++14", "-iquote/o", "-I/i", "-O2"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == [f"-I{layer.cub_overlay}", "-isystem",
                                   str(layer.folder / "include" / "cccl"), "a.cu",
                                   "-std=c++17", "-Xcompiler", "-iquote/o", "-I/i", "-O2"]
    # the first -I holds cub/cub.cuh: CCCL's, with the cub::Max that CCCL 3 removed
    cub = (layer.cub_overlay / "cub" / "cub.cuh").read_text()
    assert "#include_next <cub/cub.cuh>" in cub and "using Max = ::cuda::maximum<>;" in cub
    version = subprocess.run([str(layer.nvcc), "--version"], capture_output=True, text=True)
    assert "release 13.0" in version.stdout  # Jittor reads the version through the wrapper


def test_prepare_cuda_points_jittor_at_the_layer_from_cuda_13_on(tmp_path, no_system_cuda,
                                                                 monkeypatch):
    nvcc, roots = fake_cuda(tmp_path)
    monkeypatch.setattr(jittor_cuda13, "nvidia_roots", lambda: roots)
    env = {**no_system_cuda, "cc_flags": "-DMINE", "use_nccl": "1"}
    line = jittor_cuda13.prepare_cuda(env, tmp_path / "cache")
    assert "CUDA 13.0" in line and "cuDNN 9.19.0" in line and "CUDA 13 layer active" in line
    layer = jittor_cuda13.layer_manifest(Path(env["nvcc_path"]))
    assert layer["nvcc"] == str(nvcc.resolve())
    overlay = Path(env["nvcc_path"]).parents[1] / "overlay"
    assert env["cc_flags"] == f'-DMINE -iquote"{overlay}"'  # the user's flags kept, ours after
    assert env["use_cutt"] == env["use_cutlass"] == "0" and env["use_nccl"] == "1"
    # a child process inherits the settings: the same layer, applied once
    child = dict(env)
    assert "from nvcc_path" in jittor_cuda13.prepare_cuda(child, tmp_path / "cache")
    assert child == env


def test_below_cuda_13_nothing_changes(tmp_path, no_system_cuda, monkeypatch):
    _, roots = fake_cuda(tmp_path, version="12.4")
    monkeypatch.setattr(jittor_cuda13, "nvidia_roots", lambda: roots)
    env = dict(no_system_cuda)
    assert jittor_cuda13.prepare_cuda(env, tmp_path / "cache").endswith("layer is not needed")
    assert env == no_system_cuda and not (tmp_path / "cache").exists()


def test_cuda_13_without_cudnn_is_refused_with_what_to_install(tmp_path, no_system_cuda,
                                                              monkeypatch):
    _, roots = fake_cuda(tmp_path, cudnn=False)
    monkeypatch.setattr(jittor_cuda13, "nvidia_roots", lambda: roots)
    with pytest.raises(jittor_cuda13.CudaLayerError, match="pip install nvidia-cudnn-cu13"):
        jittor_cuda13.prepare_cuda(dict(no_system_cuda), tmp_path / "cache")
