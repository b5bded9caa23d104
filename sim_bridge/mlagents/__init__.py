"""sern worlds over Unity ML-Agents' protocol, both ways.

- ``world_env``: the client. A ``backend: unity`` world as sern's env (PettingZoo
  ``ParallelEnv``) on mlagents-envs' ``UnityEnvironment``, whose other side is a Unity build,
  the Editor, or ``sern serve-mlagents``.
- ``world_peer``: Unity's side of the protocol (the gRPC client of the trainer's
  ``UnityToExternalProto`` service) for any sern world on the kinematic or PyBullet backend,
  so that any ML-Agents trainer can drive it (``sern serve-mlagents``).
- ``channels``: the side channels both use, sern's own included.

mlagents-envs is imported lazily: ``import sim_bridge`` works without it.
"""
