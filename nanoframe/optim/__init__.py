"""Optimizers (torch.optim's names and update formulas) and learning-rate schedules."""
from nanoframe.optim import lr_schedule
from nanoframe.optim import lr_scheduler  # torch.optim.lr_scheduler's path
from nanoframe.optim.adadelta import Adadelta
from nanoframe.optim.adagrad import Adagrad
from nanoframe.optim.adam import Adam, AdamW
from nanoframe.optim.lbfgs import LBFGS
from nanoframe.optim.lr_schedule import LRScheduler
from nanoframe.optim.optimizer import Optimizer
from nanoframe.optim.rmsprop import RMSprop
from nanoframe.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "LBFGS", "LRScheduler",
           "lr_schedule", "lr_scheduler"]
