import json
import subprocess
import sys

from audit import doctor


def test_doctor_on_this_machine_reports_onednn_active_for_jittor():
    done = subprocess.run([sys.executable, "-m", "audit.cli", "doctor", "--json"],
                          capture_output=True, text=True, timeout=1500)
    report = json.loads(done.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert done.returncode == 0 and report["ok"], done.stdout
    assert checks["jittor"]["status"] == "ok" and "oneDNN active" in checks["jittor"]["detail"]
    assert checks["torch"]["detail"].startswith("2.13")
    assert "renders PDF" in checks["pdf"]["detail"]


def test_missing_framework_fails_with_a_named_line(capsys):
    def probe(code, env=None):
        if "torch.cuda" in code:
            raise RuntimeError("exit status 1: ModuleNotFoundError: No module named 'torch'")
        return {"version": "1.3.11.0", "cuda": False, "numpy": "1.26.4", "numpy_path": "/n",
                "onednn": "off",
                "reason": "no system oneDNN (install Debian's libdnnl-dev)", "onednn_active": False}

    assert doctor.main(probe=probe) == 1
    out = capsys.readouterr().out
    assert "fail  torch" in out and "No module named 'torch'" in out
    assert "warn  jittor" in out and "oneDNN inactive" in out
    assert "missing what the audit needs: torch" in out


def test_jittor_refused_beside_numpy_2_is_a_failed_check_with_the_guards_message(monkeypatch):
    """The probe runs with the Jittor site's numpy where TRANSFG_JITTOR_SITE is set, and shows
    the guard's refusal as it is."""
    monkeypatch.setenv("TRANSFG_JITTOR_SITE", "/jittor-site")
    seen = {}

    def probe(code, env=None):
        seen["env"] = env
        raise RuntimeError("exit status 1: transfg.jittor_env.JittorUnusable: numpy 2.2.6 "
                           "(/env/numpy) cannot be used with Jittor 1.3.11.0: ...")

    check = doctor.check_jittor(probe)
    assert check.status == "fail"
    assert check.detail == ("refused: numpy 2.2.6 (/env/numpy) cannot be used with Jittor "
                            "1.3.11.0: ...")
    assert seen["env"]["PYTHONPATH"].startswith("/jittor-site")


CUDA_PROBE = {"version": "1.3.11.0", "cuda": True, "numpy": "1.26.4", "numpy_path": "/s/numpy",
              "onednn": "off", "reason": "no system oneDNN", "onednn_active": False,
              "cuda_detail": "CUDA 13.0 (/site/nvidia/cu13/bin/nvcc, pip), cuDNN 9.19.0: CUDA 13 "
                             "layer active (/h/.cache/jittor/cuda13-layer/0123)",
              "kernels": {"elementwise": True, "argmax": True}}


def test_on_cuda_the_jittor_line_names_the_cuda_the_layer_and_the_kernels_that_ran():
    check = doctor.check_jittor(lambda code, env=None: CUDA_PROBE)
    assert check.status == "ok"  # oneDNN does not matter on the device
    assert "CUDA (CUDA 13.0 (/site/nvidia/cu13/bin/nvcc, pip), cuDNN 9.19.0: CUDA 13 layer " \
           "active" in check.detail
    assert check.detail.endswith("device kernels compiled and run: matrix product (cuBLAS), "
                                 "elementwise, argmax (cub)")


def test_a_device_kernel_with_a_wrong_result_fails_the_check():
    probe = {**CUDA_PROBE, "kernels": {"elementwise": True, "argmax": False}}
    check = doctor.check_jittor(lambda code, env=None: probe)
    assert check.status == "fail" and check.detail.endswith("wrong results from the device's "
                                                            "argmax kernels")
