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
