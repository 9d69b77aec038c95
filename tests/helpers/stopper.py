"""A callback that sends the process a signal in the middle of a given step, as a person or a scheduler would."""

import os
import signal

import lightning.pytorch as pl


class SignalAt(pl.Callback):
    def __init__(self, step: int, signum: str = "SIGINT") -> None:
        self.step, self.signum = step, getattr(signal, signum)

    def on_before_backward(self, trainer, pl_module, loss):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
