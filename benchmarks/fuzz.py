"""Fuzzing harness (hypothesis): malformed audio, corpus names, manifests and model folders.

Every generated input goes to a worker process that runs one entry point on it and answers
``ok``, ``expected <Error>`` (the entry point's documented error) or ``crash <traceback>``
(any other exception). A worker that does not answer within ``--timeout`` seconds (5) is a
hang: it is killed and replaced; one that dies (a segfault in a decoder) is a crash. So a
hang or a crash in C code cannot take the harness down with it.

Targets and their documented errors:

* ``audio``  — :func:`emovox.audio.load` on bytes and on a file (named with the format's
  extension), :func:`emovox.audio.duration` on the file: ``AudioError`` only.
  Inputs: the seed files of ``tests/fuzz_seeds`` (WAV, float WAV, FLAC, OGG, MP3, M4A,
  WebM) truncated, with bytes flipped or replaced, random bytes behind each format's magic
  number, WAV headers with wrong chunk sizes, huge declared lengths, zero channels, absurd
  sample rates, NaN and inf float samples.
* ``names``  — every corpus's ``parse_name`` (RAVDESS, SAVEE, TESS, EmoDB, CREMA-D) and the
  folder tree's ``label_of`` on near-valid and random names: ``ValueError``.
* ``corpus`` — each corpus reader listing a folder or a zip of fuzzed file names (``../``,
  absolute, backslashes): ``ValueError`` or ``FileNotFoundError``.
* ``manifest`` — CSV and JSONL manifests (mutated seeds, random text, NUL bytes, huge fields,
  deep JSON): ``ValueError`` or ``FileNotFoundError``; bad rows are skipped, not raised.
* ``model``  — :func:`emovox.models.folder.load_members` on a model folder (or an ensemble)
  whose config and weights are mutated (missing keys, wrong types and sizes, members
  outside the folder, pickles, truncated or random weights): ``ModelFolderError`` (a
  ``ValueError``) or ``FileNotFoundError``; ``pickle`` and ``torch.load`` are disabled in
  the worker, so any unpickling is a crash.

    python benchmarks/fuzz.py --runs 10000          # split evenly over the five targets
    python benchmarks/fuzz.py --runs 500 --target audio --seed 1

Writes a summary to ``benchmarks/results/fuzz.json`` (``--out``) and exits 1 on any crash or hang.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

SEEDS = Path(__file__).resolve().parents[1] / "tests" / "fuzz_seeds"
TARGETS = ("audio", "names", "corpus", "manifest", "model")
AUDIO_SEEDS = ("tone.wav", "tone-float.wav", "tone.flac", "tone.ogg", "tone.mp3", "tone.m4a", "tone.webm")
MAGIC = {"wav": b"RIFF\x24\x00\x00\x00WAVEfmt ", "flac": b"fLaC\x00\x00\x00\x22", "ogg": b"OggS\x00\x02",
         "mp3": b"ID3\x03\x00\x00", "mp3-frame": b"\xff\xfb\x90\x64", "m4a": b"\x00\x00\x00\x20ftypM4A ",
         "webm": b"\x1a\x45\xdf\xa3"}


# ---------------------------------------------------------------- the worker (a child process)


def _worker(conn) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import pickle
    import warnings

    warnings.simplefilter("ignore")  # zipfile's duplicate names, numpy's empty means: not failures
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # libmpg123 and FFmpeg complain on stderr about every broken frame

    import torch

    torch.set_num_threads(1)

    def no_unpickling(*a, **k):
        raise AssertionError("something was unpickled")

    pickle.load = pickle.loads = torch.load = no_unpickling  # unpickling is a crash here
    from emovox import audio
    from emovox.corpora import crema_d, emodb, folder, open_corpus, ravdess, savee, tess
    from emovox.models.folder import ModelFolderError, load_members

    tmp = Path(tempfile.mkdtemp(prefix="emovox-fuzz-"))

    def run(target: str, payload):
        work = Path(tempfile.mkdtemp(dir=tmp))
        try:
            if target == "audio":
                data, ext = payload
                errors = (audio.AudioError,)
                outcomes = []
                for source in (data, _write(work / f"x.{ext}", data)):
                    try:
                        audio.load(source)
                        outcomes.append("ok")
                    except errors as err:
                        outcomes.append(type(err).__name__)
                audio.duration(work / f"x.{ext}")  # never raises
                return "/".join(sorted(set(outcomes)))
            if target == "names":
                results = []
                for parse in (ravdess.parse_name, savee.parse_name, tess.parse_name, emodb.parse_name,
                              crema_d.parse_name, folder.label_of):
                    try:
                        parse(payload)
                        results.append("ok")
                    except ValueError:
                        results.append("ValueError")
                crema_d.read_demographics(payload)
                return "/".join(sorted(set(results)))
            if target == "corpus":
                name, files, as_zip = payload
                root = _tree(work, files, as_zip)
                try:
                    open_corpus(name, root).utterances()
                    return "ok"
                except (ValueError, FileNotFoundError) as err:
                    return type(err).__name__
            if target == "manifest":
                ext, data = payload
                for seed in ("tone.wav", "tone.flac"):
                    (work / seed).write_bytes((SEEDS / seed).read_bytes())
                try:
                    open_corpus("manifest", _write(work / f"m.{ext}", data)).utterances()
                    return "ok"
                except (ValueError, FileNotFoundError) as err:
                    return type(err).__name__
            if target == "model":
                model = _model_folder(work, payload)
                try:
                    load_members(model)
                    return "ok"
                except (ModelFolderError, FileNotFoundError) as err:
                    return type(err).__name__
            raise ValueError(f"unknown target {target}")
        finally:
            import shutil

            shutil.rmtree(work, ignore_errors=True)

    while True:
        try:
            target, payload = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("done", run(target, payload)))
        except BaseException:  # anything undocumented is a crash
            conn.send(("crash", traceback.format_exc(limit=8)))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _tree(work: Path, files: list[str], as_zip: bool) -> Path:
    import zipfile

    tone = (SEEDS / "tone.wav").read_bytes()
    if as_zip:
        root = work / "corpus.zip"
        with zipfile.ZipFile(root, "w") as zf:
            for name in files:
                if name and not name.endswith("/"):
                    zf.writestr(name, tone)
        return root
    root = work / "corpus"
    root.mkdir()
    for name in files:
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
        if not parts:
            continue
        dest = root.joinpath(*parts)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(tone)
        except OSError:  # a name the file system refuses (too long, a file where a folder is)
            pass
    return root


def _model_folder(work: Path, payload) -> Path:
    config, weights, members = payload
    folder = work / "model"
    folder.mkdir()
    if members is not None:  # an ensemble: the mutated model is its member "m"
        (folder / "config.json").write_text(json.dumps(
            {"format": "emovox-ensemble/1", "labels": ["angry", "sad"], "members": members}))
        folder.joinpath("m").mkdir()
        target = folder / "m"
    else:
        target = folder
    (target / "config.json").write_bytes(config)
    if weights is not None:
        (target / "model.safetensors").write_bytes(weights)
    return folder


# ---------------------------------------------------------------- the parent: a worker per run


class Runner:
    """Sends inputs to a worker process; a late answer is a hang, a dead worker a crash."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.ctx = mp.get_context("spawn")
        self.proc = None
        self.counts: Counter = Counter()
        self.failures: list[dict] = []
        self.slowest = (0.0, None)
        self._start()

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        child.close()

    def _restart(self) -> None:
        self.proc.kill()
        self.proc.join()
        self._start()

    def __call__(self, target: str, payload) -> tuple[str, str]:
        start = time.monotonic()
        self.conn.send((target, payload))
        # the first input also waits for the worker's imports (torch: seconds on a busy machine)
        timeout = self.timeout + (60 if not self.counts else 0)
        if not self.conn.poll(timeout):
            self._restart()
            return self._record(target, "hang", f"no answer in {self.timeout} s", payload)
        try:
            kind, detail = self.conn.recv()
        except EOFError:
            code = self.proc.exitcode if self.proc.join(1) is None else None
            self._restart()
            return self._record(target, "crash", f"worker died (exit code {code})", payload)
        took = time.monotonic() - start
        if self.counts and took > self.slowest[0]:
            self.slowest = (took, target)
        return self._record(target, kind, detail, payload)

    def _record(self, target, kind, detail, payload):
        self.counts[(target, kind if kind != "done" else detail)] += 1
        if kind in ("hang", "crash"):
            self.failures.append({"target": target, "kind": kind, "detail": detail, "input": repr(payload)[:2000]})
        return kind, detail

    def close(self) -> None:
        if self.proc is not None:
            self.conn.close()
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()


# ---------------------------------------------------------------- input strategies


def strategies():
    from hypothesis import strategies as st

    seeds = {name: (SEEDS / name).read_bytes() for name in AUDIO_SEEDS}

    @st.composite
    def mutated(draw, data: bytes):
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            op = draw(st.sampled_from(["truncate", "flip", "replace", "insert", "int32"]))
            if not data:
                break
            i = draw(st.integers(0, len(data) - 1))
            if op == "truncate":
                del data[i:]
            elif op == "flip":
                data[i] ^= 1 << draw(st.integers(0, 7))
            elif op == "replace":
                chunk = draw(st.binary(min_size=1, max_size=16))
                data[i:i + len(chunk)] = chunk
            elif op == "insert":
                data[i:i] = draw(st.binary(min_size=1, max_size=64))
            else:  # a length or size field set to something extreme
                value = draw(st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 44, 8]))
                data[i:i + 4] = struct.pack("<I", value)
        return bytes(data)

    def wav(channels, rate, bits, fmt_tag, frames, data_size=None, riff_size=None, payload=b""):
        block = max(1, channels * bits // 8)
        body = payload or b"\0" * min(frames * block, 4096)
        return (b"RIFF" + struct.pack("<I", (36 + len(body)) if riff_size is None else riff_size) + b"WAVEfmt "
                + struct.pack("<IHHIIHH", 16, fmt_tag, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
                + b"data" + struct.pack("<I", len(body) if data_size is None else data_size) + body)

    u32 = st.sampled_from([0, 1, 7, 44, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]) | st.integers(0, 2**32 - 1)
    floats = st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e38, -0.0, 0.5])
    crafted_wav = st.one_of(
        st.builds(wav, st.sampled_from([0, 1, 2, 255, 65535]), u32, st.sampled_from([0, 1, 8, 16, 24, 32, 64, 7]),
                  st.sampled_from([1, 3, 0, 2, 0xFFFE, 85]), st.integers(0, 1000),
                  st.none() | u32, st.none() | u32),
        st.builds(lambda vals, ch: wav(ch, 16000, 32, 3, 0, payload=struct.pack(f"<{len(vals)}f", *vals)),
                  st.lists(floats, min_size=1, max_size=64), st.sampled_from([1, 2])),
    )
    ext = {"tone.wav": "wav", "tone-float.wav": "wav", "tone.flac": "flac", "tone.ogg": "ogg", "tone.mp3": "mp3",
           "tone.m4a": "m4a", "tone.webm": "webm"}
    audio_input = st.one_of(
        st.sampled_from(AUDIO_SEEDS).flatmap(lambda n: st.tuples(mutated(seeds[n]), st.just(ext[n]))),
        st.tuples(crafted_wav, st.just("wav")),
        st.sampled_from(sorted(MAGIC)).flatmap(lambda m: st.tuples(
            st.binary(max_size=512).map(lambda b, m=m: MAGIC[m] + b), st.just(m.split("-")[0]))),
        st.tuples(st.binary(max_size=256), st.sampled_from(["wav", "flac", "mp3", "bin"])),
    )

    name_chars = st.sampled_from(list("0123456789-_./\\aAbcdefhnsuxyzOFYLWETN ~é\u202e"))
    near = st.sampled_from(["03-01-05-02-01-01-12.wav", "DC_sa01.wav", "AudioData/JK/su15.wav", "OAF_back_angry.wav",
                            "YAF_bean_ps.wav", "03a01Fa.wav", "1001_DFA_ANG_XX.wav", "angry/x.wav", "Happy/day/y.flac"])
    name = st.one_of(near.flatmap(lambda n: mutated(n.encode()).map(lambda b: b.decode("utf-8", "replace"))),
                     st.text(name_chars, max_size=40), st.text(max_size=30))
    clean = name.map(lambda s: s.replace("\0", "").replace("\udc80", ""))
    corpus = st.tuples(st.sampled_from(["ravdess", "savee", "tess", "emodb", "crema-d", "folder"]),
                       st.lists(clean.filter(lambda s: len(s.encode("utf-8", "replace")) < 200), max_size=6),
                       st.booleans())

    csv_seed, jsonl_seed = (SEEDS / "manifest.csv").read_bytes(), (SEEDS / "manifest.jsonl").read_bytes()
    manifest = st.one_of(
        st.tuples(st.just("csv"), mutated(csv_seed)), st.tuples(st.just("jsonl"), mutated(jsonl_seed)),
        st.tuples(st.sampled_from(["csv", "jsonl"]), st.binary(max_size=300)),
        st.tuples(st.just("csv"), st.integers(1, 3).map(lambda k: b"path,label\n" + b"a" * (131_073 * k) + b",angry\n")),
        st.tuples(st.just("jsonl"), st.integers(1, 200_000).map(lambda d: b"[" * d + b"\n")),
        st.tuples(st.just("jsonl"), st.sampled_from([b'{"path": "tone.wav", "label": NaN}\n',
                                                     b'{"path": 1e999, "label": "x"}\n', b'{"path": "' + b"9" * 5000 + b'"}\n',
                                                     b'[1,2]\n"s"\nnull\n', b"\xff\xfe\x00\n", b'{"path": "/etc/passwd", "label": "sad"}\n',
                                                     b'{"path": "../../x.wav", "label": "sad"}\n'])),
    )

    model_input = st.builds(lambda c, w, m: (c, w, m), _config_strategy(st, mutated), _weights_strategy(st, mutated),
                            st.none() | st.lists(st.sampled_from(["m", "../m", "/m", "m/../..", "..", ".", "", "\\m", "m\0"])
                                                 | st.text(max_size=8), max_size=3) | st.sampled_from([["m"], "m", 3]))
    return {"audio": audio_input, "names": name, "corpus": corpus, "manifest": manifest, "model": model_input}


_VALID_WEIGHTS = None


def _valid_model():
    """A real, tiny model folder's config and weights (ResNet18 of width 1, two labels)."""
    global _VALID_WEIGHTS
    if _VALID_WEIGHTS is None:
        import torch
        from safetensors.torch import save

        from emovox.models.folder import new_bundle
        from emovox.pipeline import Preprocessing

        torch.manual_seed(0)
        bundle = new_bundle(Preprocessing(), labels=("angry", "sad"), width=1)
        state = {k: v.contiguous() for k, v in bundle.model.state_dict().items()}
        _VALID_WEIGHTS = (bundle.config(), save(state), state)
    return _VALID_WEIGHTS


def _config_strategy(st, mutated):
    json_value = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=10),
                              lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                              max_leaves=6)
    paths = st.sampled_from([("labels",), ("model",), ("model", "name"), ("model", "width"), ("model", "dropout"),
                             ("model", "extra"), ("preprocessing",), ("preprocessing", "features"),
                             ("preprocessing", "clip_seconds"), ("preprocessing", "features", "n_fft"),
                             ("preprocessing", "features", "hop_length"), ("preprocessing", "features", "kind"),
                             ("preprocessing", "features", "n_mels"), ("preprocessing", "features", "sample_rate"),
                             ("calibration",), ("format",)])
    edit = st.tuples(paths, st.sampled_from(["delete", "set"]), json_value | st.sampled_from(
        [0, -1, 2**40, 1e308, float("nan"), float("inf"), "resnet18", [], {}, ["angry"] * 3, 10**6]))

    def apply(edits):
        import copy

        cfg = copy.deepcopy(_valid_model()[0])
        for path, op, value in edits:
            node = cfg
            for key in path[:-1]:
                node = node.get(key) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                continue
            if op == "delete":
                node.pop(path[-1], None)
            else:
                node[path[-1]] = value
        return json.dumps(cfg, allow_nan=True).encode()

    valid = st.just(None).map(lambda _: json.dumps(_valid_model()[0]).encode())
    return st.one_of(st.lists(edit, max_size=3).map(apply), valid.flatmap(mutated), st.binary(max_size=100))


def _weights_strategy(st, mutated):
    import pickle

    valid = st.just(None).map(lambda _: _valid_model()[1])

    def reshaped(i):
        from safetensors.torch import save

        import torch

        state = dict(_valid_model()[2])
        key = sorted(state)[i % len(state)]
        variants = [torch.zeros(3), state[key].double(), torch.full_like(state[key].float(), float("nan"))]
        state[key] = variants[i % 3]
        if i % 5 == 4:
            del state[key]
        return save(state)

    return st.one_of(valid, valid.flatmap(mutated), st.integers(0, 500).map(reshaped), st.none(),
                     st.binary(max_size=64), st.just(pickle.dumps({"a": 1})),
                     st.integers(0, 2**64 - 1).map(lambda n: struct.pack("<Q", n) + b'{"a":{"dtype":"F32","shape":[1],'
                                                                                  b'"data_offsets":[0,4]}}    '))


# ---------------------------------------------------------------- running


def fuzz(runs: int, targets=TARGETS, seed: int = 0, timeout: float = 5.0, progress=print) -> dict:
    """Run ``runs`` generated inputs split over ``targets``; returns the summary dict."""
    from hypothesis import HealthCheck, given, seed as hseed, settings

    strats = strategies()
    runner = Runner(timeout)
    per_target = {t: runs // len(targets) + (1 if i < runs % len(targets) else 0) for i, t in enumerate(targets)}
    start = time.monotonic()
    try:
        for target, n in per_target.items():
            if n == 0:
                continue
            t0 = time.monotonic()

            @hseed(seed)
            @settings(max_examples=n, deadline=None, database=None, phases=("generate",), derandomize=False,
                      suppress_health_check=list(HealthCheck))
            @given(strats[target])
            def one(payload):
                runner(target, payload)

            one()
            done = sum(v for (t, _), v in runner.counts.items() if t == target)
            progress(f"{target}: {done} inputs in {time.monotonic() - t0:.0f} s")
    finally:
        runner.close()
    outcomes: dict = {}
    for (t, what), v in sorted(runner.counts.items()):
        outcomes.setdefault(t, {})[what] = v
    tried = sum(runner.counts.values())
    return {"inputs": tried, "crashes": sum(f["kind"] == "crash" for f in runner.failures),
            "hangs": sum(f["kind"] == "hang" for f in runner.failures), "timeout_seconds": timeout,
            "seconds": round(time.monotonic() - start, 1), "slowest_input_seconds": round(runner.slowest[0], 2),
            "slowest_target": runner.slowest[1], "outcomes": outcomes, "failures": runner.failures[:20],
            "seed": seed, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1000, help="generated inputs in all (split over the targets)")
    p.add_argument("--target", action="append", choices=TARGETS, help="only these targets (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds before an input counts as a hang")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "fuzz.json"))
    args = p.parse_args(argv)
    summary = fuzz(args.runs, tuple(args.target or TARGETS), args.seed, args.timeout,
                   progress=lambda m: print(m, file=sys.stderr, flush=True))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("inputs", "crashes", "hangs", "seconds", "slowest_input_seconds")}))
    for f in summary["failures"]:
        print(f"{f['kind']} in {f['target']}: {f['detail']}\n  input: {f['input'][:300]}", file=sys.stderr)
    return 1 if summary["crashes"] or summary["hangs"] else 0


if __name__ == "__main__":
    sys.exit(main())
