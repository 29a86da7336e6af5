"""TransFG in Jittor. Importing this package prepares jittor for this machine first, and refuses
to go on where Jittor would compute wrong numbers (transfg/jittor_env.py): a numpy it cannot
read is refused before jittor is imported, and an array's round trip and a small matrix product
are checked once per process after."""

from transfg.jittor_env import check_numpy, check_round_trip, prepare_jittor

check_numpy()
SETUP = prepare_jittor()

try:
    import jittor  # (must follow prepare_jittor)
except SystemExit as stop:
    # Jittor 1.3 rebuilds its compiled utilities when their compile flags changed since the last
    # import (another python-config, compiler or CUDA), then exits with status 0 ("jit_utils
    # updated, please rerun your command"): a process meant to compute would end as a success.
    raise RuntimeError(
        f"jittor exited during its import (status {stop.code}): it does so after rebuilding its "
        "compiled core for changed compile flags ('jit_utils updated, please rerun your "
        "command'), and the rebuilt core is cached, so running the command again goes on"
    ) from None

jittor.flags.use_cuda = int(SETUP.cuda)
check_round_trip(jittor)
