"""nanoframe.utils.tensorboard.SummaryWriter: the bytes equal what TensorBoard's own protobuf and
record writer produce for the same events, TensorBoard reads the files back (tags, steps, values),
the folder and file layout is torch's, and bad values are one-line errors."""
import os
import re
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nanoframe as nf
from nanoframe.errors import NanoframeError
from nanoframe.utils.tensorboard import SummaryWriter, events

try:
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter
except ImportError:
    event_pb2 = None

needs_tensorboard = pytest.mark.skipif(event_pb2 is None, reason="tensorboard is not installed")


def _files(folder):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if f.startswith("events.out"))


def test_crc32c_known_values():
    assert events.crc32c(b"123456789") == 0xE3069283  # the standard check value of CRC-32C
    assert events.crc32c(b"") == 0


@needs_tensorboard
@settings(max_examples=60, deadline=None)
@given(tag=st.text(min_size=1, max_size=20), value=st.floats(width=32, allow_nan=False),
       step=st.integers(-2**63, 2**63 - 1), wall=st.floats(0, 2e9), text=st.text(max_size=50))
def test_event_bytes_equal_tensorboards(tag, value, step, wall, text):
    ours = events.event(wall, step=step, summary=events.scalar_summary(tag, value))
    theirs = event_pb2.Event(wall_time=wall, step=step, summary=summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]))
    assert ours == theirs.SerializeToString()
    new_style = events.scalar_summary(tag, value, new_style=True, double_precision=True)
    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    want = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag=tag, tensor=tensor_pb2.TensorProto(dtype="DT_DOUBLE", double_val=[value]), metadata=meta)])
    assert new_style == want.SerializeToString()
    text_meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)])
    want = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag=tag + "/text_summary", metadata=text_meta,
        tensor=tensor_pb2.TensorProto(dtype="DT_STRING", string_val=[text.encode()], tensor_shape=shape))])
    assert events.text_summary(tag, text) == want.SerializeToString()


@needs_tensorboard
def test_record_framing_equals_tensorboards(tmp_path):
    payloads = [b"", b"x", events.event(1.5, step=3, file_version="brain.Event:2"), bytes(range(256)) * 9]
    with open(tmp_path / "theirs", "wb") as f:
        writer = RecordWriter(f)
        for p in payloads:
            writer.write(p)
    assert b"".join(events.record(p) for p in payloads) == (tmp_path / "theirs").read_bytes()


@needs_tensorboard
def test_tensorboard_reads_a_training_log(tmp_path):
    with SummaryWriter(tmp_path / "run", flush_secs=3600) as writer:
        for step in range(25):
            writer.add_scalar("Loss/train", 1.0 / (step + 1), step)
        writer.add_scalar("Loss/test", nf.tensor(0.25), 24)          # a one-element Tensor, as torch takes
        writer.add_scalar("lr", np.float64(3e-4), global_step=np.int64(24))
        writer.add_scalars("pair", {"a": 1.0, "b": 2.0}, 5)
        writer.add_text("notes", "hello **world**", 0)
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {"Loss/train", "Loss/test", "lr"}
    assert [(e.step, e.value) for e in acc.Scalars("Loss/train")] == [(s, np.float32(1.0 / (s + 1))) for s in range(25)]
    assert [(e.step, round(e.value, 9)) for e in acc.Scalars("lr")] == [(24, 3e-4)]
    assert acc.Tensors("notes/text_summary")[0].tensor_proto.string_val == [b"hello **world**"]
    for sub, value in (("pair_a", 1.0), ("pair_b", 2.0)):  # torch's add_scalars layout: one folder per tag
        sub_acc = EventAccumulator(str(tmp_path / "run" / sub))
        sub_acc.Reload()
        assert [(e.step, e.value) for e in sub_acc.Scalars("pair")] == [(5, value)]
    first = next(iter(event_file_loader.LegacyEventFileLoader(_files(tmp_path / "run")[0]).Load()))
    assert first.file_version == "brain.Event:2"


def test_folder_and_file_names_are_torchs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    writer = SummaryWriter(comment="_lr0.1", filename_suffix=".v2")
    assert re.fullmatch(r"runs/[A-Z][a-z]{2}\d\d_\d\d-\d\d-\d\d_.+_lr0\.1", writer.get_logdir())
    name = os.path.basename(writer.file_writer.path)
    assert re.fullmatch(r"events\.out\.tfevents\.\d{10}\..+\.%d\.\d+\.v2" % os.getpid(), name)
    writer.close()
    writer.add_scalar("after_close", 1.0, 0)  # reopens with a new file, as torch
    writer.close()
    assert len(_files(writer.get_logdir())) == 2


def test_events_are_queued_until_max_queue_or_flush(tmp_path):
    writer = SummaryWriter(tmp_path, max_queue=3, flush_secs=3600)
    path = writer.file_writer.path
    size = os.path.getsize(path)                # the file_version record is written at once
    writer.add_scalar("a", 1.0, 0)
    writer.add_scalar("a", 2.0, 1)
    assert os.path.getsize(path) == size
    writer.add_scalar("a", 3.0, 2)              # the third queued event flushes
    assert os.path.getsize(path) > size
    writer.add_scalar("a", 4.0, 3)
    writer.flush()
    data = open(path, "rb").read()
    count, pos = 0, 0
    while pos < len(data):                      # every record is complete after flush()
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        pos += 16 + length
        count += 1
    assert pos == len(data) and count == 5
    writer.close()


def test_bad_values_are_one_line_errors(tmp_path):
    writer = SummaryWriter(tmp_path)
    for bad in ("1.0", nf.ones(2), [1.0], None, np.array(["a"])):
        with pytest.raises(NanoframeError, match=r"^add_scalar\('x'\): the value must be a number") as info:
            writer.add_scalar("x", bad, 0)
        assert "\n" not in str(info.value)
    with pytest.raises(NanoframeError, match="text_string must be a str"):
        writer.add_text("t", 3)
    assert not hasattr(writer, "add_histogram")  # not written at all rather than written wrong
    writer.close()
