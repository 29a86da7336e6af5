"""TransFG in Jittor. Importing this package prepares jittor for this machine first, and refuses
to go on where Jittor would compute wrong numbers (transfg/jittor_env.py): a numpy it cannot
read is refused before jittor is imported, and an array's round trip and a small matrix product
are checked once per process after."""

from transfg.jittor_env import check_numpy, check_round_trip, prepare_jittor

check_numpy()
SETUP = prepare_jittor()

import jittor  # noqa: E402  (must follow prepare_jittor)

jittor.flags.use_cuda = int(SETUP.cuda)
check_round_trip(jittor)
