"""The bytes of a TensorBoard event file, written by hand: TFRecord framing (length, data, each with
a masked CRC-32C) around `Event` protocol buffers, of which only the fields SummaryWriter uses are
encoded (field numbers from tensorflow/core/util/event.proto, framework/summary.proto and
framework/tensor.proto)."""
import struct


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1  # Castagnoli polynomial, reflected
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data):
    """One TFRecord: uint64 length, masked crc of the length, data, masked crc of the data."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked_crc(length)) + data + struct.pack("<I", _masked_crc(data))


# ---- protocol buffer wire format: key = field << 3 | wire type (0 varint, 1 64-bit, 2 bytes, 5 32-bit).
# As proto3 does, a singular field at its default (0, +0.0, "") is left out; a submessage that is set,
# the elements of a repeated field and a member of a oneof are always written (`always=True`).
def _varint(n):
    n &= (1 << 64) - 1  # negative int64 values are their 64-bit two's complement (10 bytes)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _int(field, value):
    return _varint(field << 3) + _varint(value) if value else b""


def _bytes(field, value, always=False):
    value = value.encode("utf-8") if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(value)) + value if value or always else b""


def _double(field, value):
    packed = struct.pack("<d", value)
    return _varint(field << 3 | 1) + packed if any(packed) else b""  # -0.0 is written, +0.0 is not


def _float(field, value, always=False):
    packed = struct.pack("<f", value)
    return _varint(field << 3 | 5) + packed if any(packed) or always else b""


_DT_FLOAT, _DT_DOUBLE, _DT_STRING = 1, 2, 7
_SESSION_START = 1


def event(wall_time, step=None, summary=None, file_version=None, session_start=False):
    """Event{wall_time=1, step=2, file_version=3, summary=5, session_log=6}."""
    out = _double(1, wall_time)
    if step is not None:
        out += _int(2, step)
    if file_version is not None:
        out += _bytes(3, file_version)
    if summary is not None:
        out += _bytes(5, summary, always=True)
    if session_start:
        out += _bytes(6, _int(1, _SESSION_START), always=True)
    return out


def _plugin_metadata(plugin_name, content=b""):
    """SummaryMetadata{plugin_data=1: PluginData{plugin_name=1, content=2}}."""
    return _bytes(1, _bytes(1, plugin_name) + _bytes(2, content), always=True)


def scalar_summary(tag, value, new_style=False, double_precision=False):
    """Summary{value=1: Value{tag=1, simple_value=2}}; new style: Value{tag=1, tensor=8:
    TensorProto{dtype=1, float_val=5 / double_val=6 (packed)}, metadata=9 (plugin 'scalars')}."""
    if not new_style:
        return _bytes(1, _bytes(1, tag) + _float(2, value, always=True), always=True)  # simple_value: a oneof
    if double_precision:
        tensor = _int(1, _DT_DOUBLE) + _bytes(6, struct.pack("<d", value), always=True)
    else:
        tensor = _int(1, _DT_FLOAT) + _bytes(5, struct.pack("<f", value), always=True)
    value = _bytes(1, tag) + _bytes(8, tensor, always=True) + _bytes(9, _plugin_metadata("scalars"), always=True)
    return _bytes(1, value, always=True)


def text_summary(tag, text):
    """The text plugin's layout (as torch writes it): tag + '/text_summary', a DT_STRING tensor of
    shape [1] (tensor_shape=2: TensorShapeProto{dim=2: Dim{size=1}}, string_val=8)."""
    shape = _bytes(2, _int(1, 1), always=True)
    tensor = _int(1, _DT_STRING) + _bytes(2, shape, always=True) + _bytes(8, text, always=True)
    value = (_bytes(1, tag + "/text_summary") + _bytes(8, tensor, always=True)
             + _bytes(9, _plugin_metadata("text"), always=True))
    return _bytes(1, value, always=True)
