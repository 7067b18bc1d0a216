"""`SummaryWriter` as torch.utils.tensorboard has it, for scalars and text.

Same folder and file names as torch (log_dir defaults to runs/<Mon DD_HH-MM-SS>_<host><comment>;
one events.out.tfevents.<time>.<host>.<pid>.<n> file per writer; add_scalars writes one subfolder
per tag), same records, so TensorBoard shows them as it shows torch's. Events are queued and
written when `max_queue` are pending, when `flush_secs` have passed, on flush() and on close(),
as torch's writer does (an append-only log: a crash loses at most the queued events).
Images, histograms, graphs, embeddings, audio and hparams are not written: those methods do not
exist here, so calling one is an AttributeError rather than a silently missing plot.
"""
import itertools
import numbers
import os
import socket
import time
from datetime import datetime

import numpy as np

from nanoframe.errors import NanoframeError, bounded
from nanoframe.utils.tensorboard import events

_writer_ids = itertools.count(1)  # the <n> in the file name, per process (tensorboard's _global_uid)


def _to_float(value, tag):
    """A Python number, a NumPy scalar or a one-element Tensor/array, as a float."""
    if isinstance(value, numbers.Number) and not isinstance(value, (bool, complex)):
        return float(value)
    arr = getattr(value, "array", value)  # a nanoframe Tensor's ndarray
    if isinstance(arr, (np.ndarray, np.generic)) and arr.size == 1 and arr.dtype.kind in "biuf":
        return float(arr.reshape(()))
    raise NanoframeError(f"add_scalar({tag!r}): the value must be a number or a one-element tensor, "
                         f"got {bounded(repr(value), 80)}")


class _FileWriter:
    """One event file: created with its file_version record, then queued events."""

    def __init__(self, log_dir, max_queue, flush_secs, filename_suffix):
        os.makedirs(log_dir, exist_ok=True)
        self.log_dir = log_dir
        name = "events.out.tfevents.%010d.%s.%s.%s" % (time.time(), socket.gethostname(), os.getpid(),
                                                       next(_writer_ids))
        self.path = os.path.join(log_dir, name + filename_suffix)
        self._file = open(self.path, "wb")
        self._max_queue, self._flush_secs = max_queue, flush_secs
        self._queue, self._last_flush = [], time.monotonic()
        self.add(events.event(time.time(), file_version="brain.Event:2"))
        self.flush()

    def add(self, event_bytes):
        self._queue.append(events.record(event_bytes))
        if len(self._queue) >= self._max_queue or time.monotonic() - self._last_flush >= self._flush_secs:
            self.flush()

    def flush(self):
        if self._queue:
            self._file.write(b"".join(self._queue))
            self._queue = []
        self._file.flush()
        self._last_flush = time.monotonic()

    def close(self):
        self.flush()
        self._file.close()


class SummaryWriter:
    """torch.utils.tensorboard.SummaryWriter(log_dir=None, comment='', purge_step=None, max_queue=10,
    flush_secs=120, filename_suffix=''): add_scalar, add_scalars, add_text, flush, close."""

    def __init__(self, log_dir=None, comment="", purge_step=None, max_queue=10, flush_secs=120,
                 filename_suffix=""):
        if not log_dir:
            current_time = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", current_time + "_" + socket.gethostname() + comment)
        self.log_dir = os.fspath(log_dir)
        self.purge_step, self.max_queue, self.flush_secs = purge_step, max_queue, flush_secs
        self.filename_suffix = filename_suffix
        self.file_writer = self.all_writers = None
        self._get_file_writer()

    def _get_file_writer(self):
        """The writer of log_dir itself, created again after close() (as torch)."""
        if self.all_writers is None or self.file_writer is None:
            self.file_writer = _FileWriter(self.log_dir, self.max_queue, self.flush_secs, self.filename_suffix)
            self.all_writers = {self.log_dir: self.file_writer}
            if self.purge_step is not None:  # TensorBoard hides earlier events at steps >= purge_step
                now = time.time()
                self.file_writer.add(events.event(now, step=int(self.purge_step), file_version="brain.Event:2"))
                self.file_writer.add(events.event(now, step=int(self.purge_step), session_start=True))
                self.purge_step = None
        return self.file_writer

    def get_logdir(self):
        return self.log_dir

    def _add(self, writer, summary, global_step, walltime):
        step = None if global_step is None else int(global_step)
        writer.add(events.event(time.time() if walltime is None else float(walltime), step=step, summary=summary))

    def add_scalar(self, tag, scalar_value, global_step=None, walltime=None, new_style=False,
                   double_precision=False):
        """One value of the curve `tag` at `global_step`."""
        value = _to_float(scalar_value, tag)
        summary = events.scalar_summary(str(tag), value, new_style=new_style, double_precision=double_precision)
        self._add(self._get_file_writer(), summary, global_step, walltime)

    def add_scalars(self, main_tag, tag_scalar_dict, global_step=None, walltime=None):
        """Several curves in one chart: each tag goes to its own subfolder
        <log_dir>/<main_tag with '/' as '_'>_<tag>, with main_tag as the scalar's tag (as torch)."""
        walltime = time.time() if walltime is None else walltime
        log_dir = self._get_file_writer().log_dir
        for tag, scalar_value in tag_scalar_dict.items():
            sub = log_dir + "/" + main_tag.replace("/", "_") + "_" + tag
            if sub not in self.all_writers:
                self.all_writers[sub] = _FileWriter(sub, self.max_queue, self.flush_secs, self.filename_suffix)
            summary = events.scalar_summary(str(main_tag), _to_float(scalar_value, main_tag))
            self._add(self.all_writers[sub], summary, global_step, walltime)

    def add_text(self, tag, text_string, global_step=None, walltime=None):
        """A text (Markdown) entry, shown in TensorBoard's Text tab."""
        if not isinstance(text_string, str):
            raise NanoframeError(f"add_text({tag!r}): text_string must be a str, got {type(text_string).__name__}")
        self._add(self._get_file_writer(), events.text_summary(str(tag), text_string), global_step, walltime)

    def flush(self):
        """Write every queued event to disk."""
        for writer in (self.all_writers or {}).values():
            writer.flush()

    def close(self):
        """Flush and close the files; a later add_* opens a new event file (as torch)."""
        for writer in (self.all_writers or {}).values():
            writer.close()
        self.file_writer = self.all_writers = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.close()
