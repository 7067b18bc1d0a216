"""Fuzz every file a run folder holds, field by field: each mutation must end in exit code 0, or in
exit code 2 with one `nanoframe: error:` line; never a traceback (an exception out of main) or a
signal."""
import json
import math
import shutil

import pytest

from tests.helpers.runs import SHAKESPEAREISH, TINY, cli

# one value of each kind that breaks a schema: null, a long string, out-of-range and huge ints,
# non-finite and fractional numbers, a bool, containers where scalars belong
VALUES = [None, "x" * 5000, -1, 0, 2**63, math.nan, 2.5, True, [], {"a": {"b": None}}]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "c.txt").write_text(SHAKESPEAREISH)
    assert cli("train", "--data", root / "c.txt", "--tokenizer", "char", "--out", root / "run", "--max_iters", 4,
               "--checkpoint_interval", 2, "--eval_interval", 2, *TINY) == 0
    return root / "run"


def _paths(obj, prefix=(), depth=2):
    """Every key path of a JSON object, to `depth` levels."""
    if not isinstance(obj, dict) or depth == 0:
        return []
    out = []
    for k, v in obj.items():
        out.append(prefix + (k,))
        out.extend(_paths(v, prefix + (k,), depth - 1))
    return out


def _mutated(obj, path, value):
    obj = json.loads(json.dumps(obj))
    node = obj
    for k in path[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return obj


_DELETE = object()


def _check(capsys, args, what):
    try:
        code = cli(*args)
    except BaseException as e:      # noqa: BLE001  (anything escaping main is a traceback for the user)
        pytest.fail(f"{what}: {type(e).__name__}: {e}"[:500])
    err = capsys.readouterr().err.strip().splitlines()
    if code == 2:
        errors = [line for line in err if line.startswith("nanoframe: error:")]
        assert len(errors) == 1 and err[-1] == errors[0] and len(errors[0]) < 1200, (what, err)
    else:
        assert code == 0, (what, code, err)
    return code


FILES = {                      # file in the run -> the command that reads it
    "best/state.json": ["sample", "{run}", "--max-new-tokens", 2, "--seed", 0],
    "checkpoints/step_000004/state.json": ["train", "--out", "{run}", "--resume", "--max_iters", 4, *TINY],
    "config.json": ["train", "--out", "{run}", "--resume", "--max_iters", 4, *TINY],
    "data/meta.json": ["train", "--out", "{run}", "--resume", "--max_iters", 4, *TINY],
    "tokenizer.json": ["sample", "{run}", "--max-new-tokens", 2, "--seed", 0],
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_field_of_every_json_file(trained, tmp_path, capsys, name):
    original = json.loads((trained / name).read_text())
    outcomes = {0: 0, 2: 0}
    # the training config's fields are fuzzed through config.json; in a checkpoint its container is enough
    paths = [p for p in _paths(original) if not (name.startswith("checkpoints") and p[0] == "train_config"
                                                 and len(p) > 1)]
    for path in paths:
        for value in VALUES + [_DELETE]:
            run = tmp_path / "run"
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(trained, run)
            (run / name).write_text(json.dumps(_mutated(original, path, value)))
            args = [str(a).replace("{run}", str(run)) for a in FILES[name]]
            outcomes[_check(capsys, args, f"{name} {'.'.join(map(str, path))} = {str(value)[:40]}")] += 1
    assert outcomes[2] > 0        # the fuzzing reached the validation


def test_damaged_bytes_of_every_file(trained, tmp_path, capsys):
    """Truncations, emptied files and flipped bytes of every file, JSON or binary."""
    files = [p.relative_to(trained) for p in trained.rglob("*") if p.is_file() and p.name != ".nanoframe.lock"]
    for rel in files:
        data = (trained / rel).read_bytes()
        for kind, damaged in (("empty", b""), ("half", data[: len(data) // 2]), ("flip", _flip(data)),
                              ("not utf-8", b"\xff\xfe" + data[2:])):
            run = tmp_path / "run"
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(trained, run)
            (run / rel).write_bytes(damaged)
            for args in (["sample", run, "--max-new-tokens", 2, "--seed", 0],
                         ["train", "--out", run, "--resume", "--max_iters", 5, *TINY]):
                _check(capsys, args, f"{rel} {kind}: {args[0]}")


def _flip(data):
    if not data:
        return data
    b = bytearray(data)
    for i in range(0, len(b), max(1, len(b) // 7)):
        b[i] ^= 0x5A
    return bytes(b)


def test_metrics_lines_mutated(trained, tmp_path, capsys):
    lines = (trained / "metrics.jsonl").read_text().splitlines()
    for i in (0, len(lines) // 2, len(lines) - 1):
        for value in VALUES + ["{", "\x00\x00", "[1, 2]"]:
            run = tmp_path / "run"
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(trained, run)
            mutated = list(lines)
            mutated[i] = value if isinstance(value, str) else json.dumps({"step": value, "loss": value})
            (run / "metrics.jsonl").write_text("\n".join(mutated) + "\n")
            for args in (["plot", run], ["train", "--out", run, "--resume", "--max_iters", 5, *TINY]):
                _check(capsys, args, f"metrics line {i} = {str(value)[:30]}: {args[0]}")
