"""The stage-wise schedule: which stages run and which are updated at a step.

derivations/training.md, "Stage-wise schedule".
"""

import dataclasses

__all__ = ["Phase", "stagewise_schedule", "phase_at"]


@dataclasses.dataclass(frozen=True)
class Phase:
    """A stretch of training: which stages run and which are updated."""

    first_step: int       # global step at which the phase starts
    n_stages: int         # stages run at the finest scale
    trainable: tuple      # name prefixes of the parameters that are updated


def stagewise_schedule(stage_steps, frozen_steps, n_stages, scale_prefix, *,
                       train_coarse_at_end=False, coarse_prefixes=()):
    """The paper's stage-wise pre-training schedule.

    The paper trains one stage for about a million steps, then adds the next
    stage and updates only it for 1,000 steps, then trains end to end until
    the next stage is added (§3.3). Here stage ``s`` is added at global step
    ``(s - 1) * stage_steps``; for its first ``frozen_steps`` steps only the
    new stage is updated; the last stage then trains end to end for as long
    as the run goes on. The schedule depends on nothing but the
    configuration, so stopping a run early and resuming it changes nothing.

    Parameters
    ----------
    stage_steps : int
        Steps between the addition of two stages.
    frozen_steps : int
        Steps during which only a newly added stage is updated.
    n_stages : int
    scale_prefix : str
        Parameter-name prefix of the scale being trained, e.g. ``"scale1."``.
    train_coarse_at_end : bool, optional
        Once the last stage trains end to end, also update the coarser
        scales (end-to-end fine-tuning of a multi-scale network).
    coarse_prefixes : tuple of str, optional
        Their name prefixes.

    Returns
    -------
    list of Phase
    """
    phases = []
    for stage in range(1, n_stages + 1):
        start = (stage - 1) * int(stage_steps)
        end_to_end = tuple(f"{scale_prefix}stage{s}." for s in range(1, stage + 1))
        if stage == 1:
            phases.append(Phase(start, 1, end_to_end))
            continue
        phases.append(Phase(start, stage, (f"{scale_prefix}stage{stage}.",)))
        phases.append(Phase(start + int(frozen_steps), stage, end_to_end))
    if train_coarse_at_end and coarse_prefixes:
        last = phases[-1]
        phases[-1] = Phase(last.first_step, last.n_stages,
                           last.trainable + tuple(coarse_prefixes))
    return phases


def phase_at(phases, step):
    """The phase that global step ``step`` belongs to."""
    current = phases[0]
    for phase in phases:
        if phase.first_step <= step:
            current = phase
    return current
