"""The typed configuration of a MAPPO/IPPO run (CleanRL style: one dataclass, a docstring
under each field, checked on construction), and what follows from it alone."""

from __future__ import annotations

from dataclasses import dataclass, field

from policies.steering import STEER_ON


@dataclass
class TrainConfig:
    """Hyper-parameters of a MAPPO/IPPO run."""

    algo: str = "mappo"
    """mappo: the critic sees the whole team; ippo: each robot's own observation."""
    total_agent_steps: int = 2_000_000
    """Robot-steps of experience to collect (worlds × robots × control steps)."""
    num_worlds: int = 64
    """Worlds simulated side by side (per worker when ``workers`` > 0)."""
    rollout_steps: int = 128
    """Control steps per world between updates."""
    learning_rate: float = 3e-4
    anneal_lr: bool = True
    """Decay the learning rate linearly to zero."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    update_epochs: int = 5
    minibatches: int = 4
    clip_coef: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 128
    """Width of the actor's and critic's two hidden layers."""
    discrete_per_axis: int = 0
    """0: continuous actions; k > 0: a k × k grid of (v, ω) commands."""
    value_norm: bool = True
    """Normalise value targets with running statistics."""
    init_log_std: float = -0.5
    """Initial exploration noise (log std in the [-1, 1] action space)."""
    bc_agent_steps: int = 0
    """Robot-steps of scripted-baseline demonstrations to clone before PPO (0: none)."""
    bc_epochs: int = 30
    dagger_rounds: int = 0
    """Rounds of DAgger after cloning: the learner drives, the baseline labels, refit."""
    dagger_agent_steps: int = 0
    """Robot-steps labelled per DAgger round (0: as many as ``bc_agent_steps``)."""
    dagger_epochs: int = 10
    """Passes over the aggregated data set after each DAgger round."""
    teacher: dict[str, float] = field(default_factory=dict)
    """Changes to the scripted baseline's tuning while it teaches (cloning and DAgger), e.g.
    ``{"safety_margin_m": 0.2}``: a teacher that keeps more clearance than the learner needs
    leaves room for the learner's imprecision. ``--set teacher.safety_margin_m=0.2``."""
    residual: bool = False
    """Learn a correction to the scripted baseline's command (tuned by ``teacher``) instead
    of the command itself (``policies.residual``): the run starts from the baseline's team.
    Pair it with a small ``init_log_std`` (the baseline plus wide noise is a weak start)."""
    targets: bool = False
    """Choose targets instead of commands (``policies.targets``): each robot's action is which
    landmark in view to drive to, or which heading to search along, and a fixed controller
    (the baseline's driving) turns it into a command. For assignment tasks (coverage). With
    ``residual`` the baseline's own command is one more choice, the one the actor starts on."""
    target_headings: int = 8
    """Search headings a target-choice (or steering) actor can pick from."""
    steer_search: bool = False
    """Run the scripted baseline and learn only where it searches (``policies.steering``):
    each searching robot's choice is to keep its search heading or take one of
    ``target_headings``. For coverage; no cloning, targets or residual with it."""
    critic_state: bool = False
    """MAPPO's critic sees the task's global state (``Task.critic_state``: where everything is,
    what is done, the time left) with the robot's own observation, instead of every robot's
    observation. Training only: the actor, and so the checkpoint's behaviour, is unchanged."""
    steer_on: str = "search"
    """When a steering choice counts: every step a robot searches (``search``), or only when
    its search direction is set anew (``turns``: a search begins, a wall turns it); or
    (``holding``) every step a robot holds its landmark and sees another free one, and the
    choice is whether to hand its own off (``policies.steering``); ``holding_changes``: that
    choice only where what the holding robot sees changes."""
    steer_keep_logit: float | None = None
    """The untrained actor's logit for keeping the baseline's choice (choice 0), the others
    starting at 0 (None: ``steering.KEEP_LOGITS`` for ``steer_on``). High starts PPO at the
    baseline; lower explores the alternatives more often at first."""
    memory: int = 0
    """Give the actor a memory: a GRU of this size that reads every observation (recurrent
    MAPPO; 0: a memoryless actor). For partially observed tasks, where what a robot saw a
    while ago matters (coverage: landmarks out of view now). Trained by backpropagation
    through ``memory_chunk`` control steps."""
    memory_chunk: int = 16
    """Length (control steps) of the sequences a memory is trained on; divides rollout_steps."""
    critic_warmup_iterations: int = 0
    """PPO iterations that train only the critic (after cloning, so the actor is kept)."""
    init_checkpoint: str = ""
    """Start from this checkpoint's weights (fine-tuning; same task and spaces), not from scratch."""
    workers: int = 0
    """Ray rollout workers (0: collect in this process)."""
    backend: str = "kinematic"
    """Where the worlds run: ``kinematic`` (the vectorised engine, ``num_worlds`` at once) or
    ``unity`` (one world on the other side of ML-Agents' protocol, ``sim_bridge.mlagents``:
    a Unity build, the Editor or ``sern serve-mlagents``; ``num_worlds`` 1, no workers)."""
    seed: int = 0
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if self.algo not in ("mappo", "ippo"):
            raise ValueError(f"algo must be mappo or ippo, got {self.algo!r}")
        for name in ("total_agent_steps", "num_worlds", "rollout_steps", "update_epochs", "minibatches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.dagger_rounds and not self.bc_agent_steps:
            raise ValueError("dagger_rounds needs bc_agent_steps > 0 (DAgger refines a clone)")
        if self.residual and (self.bc_agent_steps or self.discrete_per_axis):
            raise ValueError(
                "residual starts from the baseline itself: it takes continuous actions and no cloning "
                "(bc_agent_steps 0, discrete_per_axis 0)"
            )
        if self.steer_search and (self.targets or self.residual or self.bc_agent_steps or self.discrete_per_axis):
            raise ValueError(
                "steer_search runs the baseline itself and learns only its search headings: no targets, "
                "residual, cloning (bc_agent_steps) or command grid (discrete_per_axis) with it"
            )
        if self.backend not in ("kinematic", "unity"):
            raise ValueError(f"backend must be kinematic or unity for training, got {self.backend!r}")
        if self.backend == "unity" and (self.num_worlds != 1 or self.workers or self.critic_state):
            raise ValueError(
                "backend unity trains on one Unity world: num_worlds 1 (--worlds 1), no workers, no critic_state "
                "(the Unity side sends observations, not the task's state)"
            )
        if self.critic_state and self.algo != "mappo":
            raise ValueError("critic_state is for MAPPO's centralised critic (algo mappo)")
        if self.steer_on not in STEER_ON:
            raise ValueError(f"steer_on must be one of {', '.join(STEER_ON)}, got {self.steer_on!r}")
        if self.memory < 0:
            raise ValueError(f"memory is a GRU size (0: none), got {self.memory}")
        if self.memory and (self.memory_chunk < 1 or self.rollout_steps % self.memory_chunk):
            raise ValueError(
                f"memory_chunk ({self.memory_chunk}) must divide rollout_steps ({self.rollout_steps}): "
                "a memory is trained on whole chunks of each rollout"
            )
        if self.memory and self.bc_agent_steps:
            raise ValueError("cloning (bc_agent_steps) trains a memoryless actor: use memory 0 with it")
        if self.targets and self.discrete_per_axis:
            raise ValueError(
                "targets replaces the action space with target choices: no command grid (discrete_per_axis 0)"
            )


def residual_tuning(config: TrainConfig) -> dict[str, float] | None:
    """The baseline's tuning for a residual run (None: not residual)."""
    return dict(config.teacher) if config.residual else None
