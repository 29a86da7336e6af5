"""TransFG in Jittor. Importing this package prepares jittor for this machine first."""

from transfg.jittor_env import prepare_jittor

SETUP = prepare_jittor()

import jittor  # noqa: E402  (must follow prepare_jittor)

jittor.flags.use_cuda = int(SETUP.cuda)
