"""Training of the kernel-estimation network (paper §3.3).

:func:`train` runs or resumes a training run in a folder, the library behind
``refdeblur train``. The parts, each in its module:

* :mod:`~refdeblur.training.config`: the configuration and the run folder;
* :mod:`~refdeblur.training.data`: training pairs from natural images and
  sampled camera shake, the validation split;
* :mod:`~refdeblur.training.documents`: synthetic document pages, the
  content of ``refdeblur train --content text``;
* :mod:`~refdeblur.training.optim`: ADADELTA and Adam;
* :mod:`~refdeblur.training.schedule`: the stage-wise schedule;
* :mod:`~refdeblur.training.step`: the kernel loss, the outlier rule, one step;
* :mod:`~refdeblur.training.trainer`: the loop, checkpoints and resume;
* :mod:`~refdeblur.training.export`: model files and recipes from a run;
* :mod:`~refdeblur.training.log`: reading and plotting a run's log.

derivations/training.md states the choices where the paper is silent;
derivations/fine_tuning.md those of runs that start from a trained network
(``refdeblur train --init``), noise ranges and synthetic documents.
"""

from .config import default_config, training_command
from .export import export_model, export_run
from .optim import Adadelta, Adam, make_optimizer, optimizer_settings
from .schedule import Phase, phase_at, stagewise_schedule
from .step import OutlierFilter, kernel_errors, training_step
from .trainer import Trainer, TrainingResult, train

__all__ = [
    "Trainer", "TrainingResult", "train", "default_config", "training_command",
    "optimizer_settings", "make_optimizer", "Adadelta", "Adam",
    "Phase", "phase_at", "stagewise_schedule",
    "OutlierFilter", "kernel_errors", "training_step",
    "export_model", "export_run",
]
