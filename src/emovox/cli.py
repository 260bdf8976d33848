"""Command line: parses arguments, calls the library, prints. No logic of its own."""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent / "assets" / "examples"


def expand_paths(items: list[str]) -> tuple[list[str], list[str]]:
    """Files, folders (searched recursively for audio) and globs → (files, missing)."""
    from .audio import is_audio_file

    files, missing = [], []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files += sorted(str(f) for f in p.rglob("*") if f.is_file() and is_audio_file(f))
        elif p.is_file():
            files.append(item)
        else:
            matches = sorted(glob.glob(item, recursive=True))
            if matches:
                files += [m for m in matches if Path(m).is_file()]
            else:
                missing.append(item)
    return files, missing


class _NoBar:
    """What ``predict`` uses instead of a progress bar for one file."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def update(self, n: int = 1) -> None:
        pass


def _progress(total: int, show: bool):
    if not show:  # one file on stdout: no bar, and tqdm (about 70 ms to import) is not loaded
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="file", desc="predict", file=sys.stderr)


def cmd_predict(args) -> int:
    from .audio import AudioError
    from .batch import FORMATS, Printer, ResultsFile, parse_shard, shard, shard_from_env, shard_path
    from .inference import Recognizer
    from .labels import parse_emotions

    files, missing = expand_paths(args.paths)
    failures = [(m, "no such file, folder or glob match") for m in missing]
    if not files:
        for src, why in failures:
            print(f"emovox: {src}: {why}", file=sys.stderr)
        print("emovox: no audio files found", file=sys.stderr)
        return 1
    k_n = parse_shard(args.shard) if args.shard else shard_from_env()
    if k_n and k_n[1] > 1:
        k, n = k_n
        if args.speaker_norm:
            raise ValueError("--speaker-norm takes each speaker's clips together; sharding (--shard, or "
                             "torchrun's RANK/WORLD_SIZE) would split them: run one folder per process")
        total = len(set(files))
        files = shard(files, k, n)
        if args.output:
            args.output = str(shard_path(args.output, k, n))
        print(f"emovox: shard {k}/{n}: {len(files)} of {total} files"
              + (f" -> {args.output}" if args.output else ""), file=sys.stderr)
    given = {k: getattr(args, k) for k in ("min_confidence", "min_speech_seconds", "vad_threshold", "measure_speech")
             if getattr(args, k) is not None}  # the others keep the library's defaults
    rec = Recognizer.load(args.model, backend=args.backend, threads=args.threads,
                          speaker_adaptive=bool(args.speaker_norm), emotions=parse_emotions(args.emotions), **given)
    if args.speaker_norm and args.model is None:
        print("emovox: --speaker-norm: " + ("the bundled speaker-adaptive model" if rec.adapts_to_speakers else
                                            "the bundled model, judged against each speaker's mean answer"),
              file=sys.stderr)
    groups_from, done = files, set()  # a resumed run's references still come from every file
    if args.output:
        writer = ResultsFile(args.output, rec.answer_labels, fmt=args.format if args.format in FORMATS else None,
                             resume=args.resume)
        skipped = len(files)
        done = set(writer.done)
        files = [f for f in files if f not in done]
        skipped -= len(files)
        if skipped:
            print(f"emovox: {skipped} files already in {args.output}; predicting the other {len(files)}",
                  file=sys.stderr)
    else:
        if args.resume:
            raise ValueError("--resume needs --output: the results file of the run to continue")
        writer = Printer(args.format, rec.answer_labels)
    show_bar = not args.quiet and (args.output is not None or len(files) > 1) and len(files) > 0
    try:
        with _progress(len(files), show_bar) as bar:
            if args.speaker_norm:  # one reference per folder (a speaker, a session) or for all files
                groups: dict[str, list] = {}
                for f in groups_from:
                    groups.setdefault(str(Path(f).parent) if args.speaker_norm == "folder" else "", []).append(f)
                results = ((src, r) for src, r in rec.predict_speakers(groups, workers=args.workers)
                           if src not in done)
            else:
                results = rec.predict_many(files, batch_size=args.batch_size, workers=args.workers)
            for src, result in results:
                if isinstance(result, AudioError):
                    failures.append((src, result.reason))
                writer.write(src, result)  # a results file keeps a row for an unreadable file too
                bar.update(1)
    finally:
        writer.close()  # valid JSON even if interrupted; a results file keeps every finished row
    if args.output:
        print(f"emovox: wrote {args.output}", file=sys.stderr)
    if failures:
        print(f"emovox: {len(failures)} of {len(files) + len(missing)} inputs could not be read:", file=sys.stderr)
        for src, why in failures:
            print(f"  {src}: {why}", file=sys.stderr)
    return 1 if failures else 0


def cmd_merge(args) -> int:
    from .batch import merge

    n = merge(args.inputs, args.output, partial=args.partial)
    print(f"emovox: merged {n} rows from {len(args.inputs)} files into {args.output}", file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    from .corpora.ravdess import parse_name
    from .inference import Recognizer

    rec = Recognizer.load(args.model, backend=args.backend, threads=args.threads)
    clips = sorted(EXAMPLES.glob("*.flac"))
    print(f"emovox {__import__('emovox').__version__}: bundled model on {len(clips)} bundled RAVDESS clips\n")
    print(f"{'clip':<28} {'actor said':<10} {'emovox hears':<13} probability")
    for clip in clips:
        pred = rec.predict(clip)
        conf = f"{pred.confidence:.2f}" if pred.speech else "-"
        print(f"{clip.name:<28} {parse_name(clip.name)['emotion']:<10} {pred.answer:<13} {conf}")
    print("\n(the examples come from RAVDESS, CC BY-NC-SA 4.0; the bundled model was trained on all its actors,"
          "\n so these are seen speakers — see `emovox evaluate` for honest, actor-disjoint figures)")
    return 0


def cmd_export(args) -> int:
    from .inference.export import export_onnx
    from .inference.recognizer import BUNDLED_MODEL

    calibration, folder = None, args.model or BUNDLED_MODEL
    if args.quantize == "static":
        from .models.folder import load_members

        rate = load_members(folder)[0].pipeline.sample_rate
        calibration = _calibration_waves(args.calibration, args.calibration_clips, rate)
    elif args.calibration:
        raise SystemExit("emovox export: --calibration is for --quantize static")
    out = export_onnx(folder, args.output, quantize=args.quantize or False,
                      calibration=calibration, half=args.half)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): waveform [samples] float32 at 16 kHz -> probabilities [8]")
    return 0


def _calibration_waves(items: list[str] | None, clips: int, rate: int) -> list:
    """Up to ``clips`` recordings spread evenly over the files under ``items``, decoded at
    ``rate``; unreadable ones are reported and skipped."""
    from .inference.export import calibration_waves

    files, missing = expand_paths(items or [])
    if missing or not files:
        raise SystemExit("emovox export: --quantize static needs --calibration audio files or folders (clips "
                         "like the ones the model will hear, e.g. its training clips)"
                         + (f"; not found: {', '.join(missing)}" if missing else ""))
    if clips < 1:
        raise SystemExit("emovox export: --calibration-clips must be at least 1")
    waves = calibration_waves(files, clips, rate,
                              on_error=lambda f, err: print(f"emovox export: skipped {f}: {err}", file=sys.stderr))
    if not waves:
        raise SystemExit("emovox export: none of the calibration files could be read")
    return waves


def _timeline_options(args) -> dict:
    """The timeline options given on the command line; the others keep TimelineConfig's defaults."""
    names = ("window", "hop", "smooth", "min_confidence", "vad_threshold")
    return {k: getattr(args, k) for k in names if getattr(args, k) is not None}


def _write_timeline(tl, fmt: str, output: str | None, plot: str | None, *, title: str | None = None,
                    stdout: bool = True) -> None:
    """A timeline to ``output`` (else, with ``stdout``, to stdout) as ``fmt``, and its plot:
    what ``timeline`` and ``listen`` write."""
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(tl.render(fmt))
        print(f"wrote {output}", file=sys.stderr)
    elif stdout:
        sys.stdout.write(tl.render(fmt))
    if plot:
        from .plots import plot_timeline

        print(f"wrote {plot_timeline(tl, plot, title=title)}", file=sys.stderr)


def cmd_timeline(args) -> int:
    from tqdm.auto import tqdm

    from .audio import duration
    from .inference import Recognizer
    from .labels import parse_emotions

    rec = Recognizer.load(args.model, backend=args.backend, threads=args.threads, speaker_adaptive=args.speaker_norm,
                          emotions=parse_emotions(args.emotions))
    total = duration(args.recording)
    with tqdm(total=round(total, 1) if total else None, unit="s", desc="timeline", disable=args.quiet,
              bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s audio [{elapsed}<{remaining}]") as bar:
        tl = rec.timeline(args.recording, progress=lambda t: bar.update(t - bar.n), speaker_norm=args.speaker_norm,
                          **_timeline_options(args))
    _write_timeline(tl, args.format, args.output, args.plot)
    return 0


def cmd_explain(args) -> int:
    from .batch import table_line
    from .inference import Prediction, Recognizer
    from .plots import plot_explanation

    rec = Recognizer.load(args.model, threads=args.threads)
    expl = rec.explain(args.clip, target=args.target, stage=args.stage)
    out = plot_explanation(expl, args.output, title=Path(args.clip).name)
    top = max(expl.probabilities, key=expl.probabilities.get)
    print(table_line(Prediction(top, expl.probabilities, args.clip)))  # predict's own line
    print(f"explained {expl.label!r} with maps of {', '.join(m.name for m in expl.maps)}; wrote {out}")
    return 0


def cmd_listen(args) -> int:
    from .inference import Recognizer
    from .live_input import Microphone, file_blocks
    from .live_display import LiveDisplay

    from .inference.recognizer import RUNNING_WARMUP
    from .labels import parse_emotions

    rec = Recognizer.load(args.model, backend=args.backend, threads=args.threads, emotions=parse_emotions(args.emotions))
    engine = rec.stream(running=RUNNING_WARMUP if args.speaker_norm else 0, **_timeline_options(args))
    if args.speaker_norm:
        print(f"emovox: --speaker-norm: each speech window judged against the mean answer of the speech so far, "
              f"from the {RUNNING_WARMUP}th speech window on (one speaker throughout)", file=sys.stderr)
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    blocks = file_blocks(args.input, realtime=not args.fast) if args.input else Microphone(device)
    display = LiveDisplay(engine.labels, plain=args.plain or not sys.stdout.isatty(), smooth=engine.config.smooth)
    interrupted = False
    try:
        with display:
            for block in blocks:
                for cell in engine.push(block):
                    display.update(cell, engine)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()  # stops the microphone stream
    tl = engine.finish()
    display.summary(tl, interrupted)
    fmt = "csv" if args.save and args.save.endswith(".csv") else "json"
    _write_timeline(tl, fmt, args.save, args.plot, title="live session", stdout=False)
    return 0


def cmd_show(args) -> int:
    from . import audio

    wave = audio.load(args.clip)  # before importing plots (torch, matplotlib): a bad file is reported at once
    from .plots import plot_clip

    out = plot_clip(wave, audio.WORKING_RATE, args.output, title=Path(args.clip).name)
    print(f"wrote {out}")
    return 0


def cmd_data_check(args) -> int:
    from .corpora.check import check_corpus, format_table
    from .threads import share

    report = check_corpus(args.corpus, args.dir, workers=share(args.workers, 1).workers, progress=not args.quiet)
    print(json.dumps(report.to_dict(), indent=2) if args.format == "json" else format_table(report))
    return 0 if report.ok else 1


def cmd_serve(args) -> int:
    from .serve.run import serve

    opts = {k: getattr(args, k) for k in ("model", "backend", "min_confidence", "min_speech_seconds", "measure_speech",
                                         "max_upload_mb", "max_seconds",
                                         "max_concurrent", "max_queue", "timeout", "threads", "workers", "api_key")}
    return serve(host=args.host, port=args.port, insecure=args.insecure, log_level=args.log_level,
                 cors_origins=args.cors_origin, **opts)


def _config(args):
    from .config import load_config

    cfg = load_config(args.config, list(args.set or []))
    data = {}
    if getattr(args, "data", None):
        data["root"] = args.data
    if getattr(args, "corpus", None):
        data["corpus"] = args.corpus[0] if len(args.corpus) == 1 and "=" not in args.corpus[0] else list(args.corpus)
    return cfg.merged({"data": data}) if data else cfg


def cmd_train(args) -> int:
    from .training.distributed import session
    from .training.evaluate import train_on_fold

    with session() as ctx:  # under torchrun: one of N ranks (DistributedDataParallel); rank 0 writes the run
        result = train_on_fold(_config(args), args.out, args.fold, lr_from=args.lr_from, resume=args.resume)
        if not ctx.is_main:
            return 0
    print((Path(args.out) / "report.md").read_text())
    print(f"model folder: {result.run_dir / 'best'}")
    return 0


def _threads_from(cfg) -> None:
    import torch

    torch.set_num_threads(cfg.threads)


def cmd_lr_find(args) -> int:
    from .training.evaluate import fold_data
    from .training.trainer import find_lr

    cfg = _config(args)
    _threads_from(cfg)
    data, fold = fold_data(cfg, args.fold)
    rt = find_lr(cfg, data.subset(fold.train))
    saved = rt.save(args.out, fold=args.fold or "all")
    print(f"suggested one-cycle bounds: lower {rt.lower:.2e}, upper (max_lr) {rt.upper:.2e}")
    fold_opt = f" --fold {args.fold}" if args.fold else ""
    print(f"wrote {saved.with_suffix('.png')}; use them with: emovox train --lr-from {saved}{fold_opt} ...")
    return 0


def cmd_evaluate(args) -> int:
    from .safeio import FileLock

    cfg = _config(args)
    _threads_from(cfg)
    with FileLock(args.out, inside=True):  # one process per evaluation folder
        return _evaluate(cfg, args)


def _evaluate(cfg, args) -> int:
    if args.test or args.protocol == "loco":
        from .training import crosscorpus

        corpus = cfg.data.corpus
        train = args.train or ([corpus] if isinstance(corpus, str) else list(corpus))
        if args.protocol == "loco":
            results = crosscorpus.leave_one_corpus_out(cfg, train + (args.test or []), args.out)
        else:
            if args.protocol not in ("emobox", "cross"):  # emobox is only the default here
                raise ValueError(f"--test runs the cross-corpus protocol, not {args.protocol!r}")
            results = [crosscorpus.cross_corpus(cfg, train, args.test[0], args.out, test_list=args.test_list)]
        for res in results:
            print(crosscorpus.results_table(res))
        print(f"wrote {Path(args.out)}/**/results.json")
        return 0
    if args.train or args.test_list:
        raise ValueError("--train and --test-list go with --test (cross-corpus)")
    from .training.evaluate import evaluate, results_table

    res = evaluate(cfg, args.protocol, args.out, folds=args.folds.split(",") if args.folds else None)
    print(results_table(res))
    print(f"wrote {Path(args.out) / 'results.json'}")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emovox", description="Speech emotion recognition.")
    p.add_argument("--version", action="version", version=f"emovox {__import__('emovox').__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def model_opts(sp, backend=True):
        sp.add_argument("--model", help="model folder or .onnx file (default: the bundled model)")
        sp.add_argument("--threads", type=_positive, default=None,
                        help="CPU threads per inference (default: $EMOVOX_THREADS, else $OMP_NUM_THREADS, else 1: "
                             "the fastest on a busy machine)")
        if backend:
            sp.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                            help="onnx: run the folder's model.onnx with onnxruntime (faster start, no torch)")

    sp = sub.add_parser("predict", help="emotion of each file (files, folders, globs)")
    sp.add_argument("paths", nargs="+")
    sp.add_argument("--format", choices=["table", "json", "csv", "jsonl"], default="table",
                    help="stdout: table, json, csv or jsonl; --output: json, csv or jsonl (default: from its extension)")
    sp.add_argument("-o", "--output", help="results file: .csv or .jsonl (written row by row, crash-safe) or .json "
                                           "(an array, written when the run ends)")
    sp.add_argument("--resume", action="store_true", help="continue an interrupted run: skip files already in --output")
    sp.add_argument("--shard", metavar="K/N",
                    help="predict shard K (0..N-1) of N: every N-th file of the sorted list; -o out.jsonl "
                         "becomes out.shard-K-of-N.jsonl (default: torchrun's RANK/WORLD_SIZE when set)")
    sp.add_argument("--batch-size", type=int, default=16)
    sp.add_argument("--workers", type=_positive, default=None,
                    help="batches predicted side by side (default: the cores this process may use / --threads)")
    sp.add_argument("--speaker-norm", choices=["folder", "all"],
                    help="speaker-adaptive: judge each clip against its speaker's usual voice, taking the clips "
                         "of each folder (folder) or all the files (all) as one speaker (at least 2 clips of "
                         "speech). Default model: the bundled speaker-adaptive one (torch); a --model that "
                         "takes feature statistics (functionals, normalize: bins; torch) uses them, any other "
                         "model the speaker's mean answer")
    sp.add_argument("--emotions", metavar="LIST",
                    help="answer among these emotions only, e.g. angry,happy,neutral,sad (your label set): calm "
                         "counts as neutral where the list has neutral but not calm, other emotions left out are dropped")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--min-confidence", type=float,
                    help="answer 'uncertain' when the top (calibrated) probability is below this")
    sp.add_argument("--min-speech-seconds", type=float,
                    help="answer 'no_speech' when the VAD hears less speech than this (default 0.3; 0: always predict)")
    sp.add_argument("--vad-threshold", type=float, help="silero VAD speech threshold")
    sp.add_argument("--measure-speech", action="store_true", default=None,
                    help="report every file's seconds of speech (by default the VAD stops once it has heard "
                         "--min-speech-seconds, and speech answers leave speech_seconds empty)")
    model_opts(sp)
    sp.set_defaults(func=cmd_predict)

    def segment_opts(sp):
        sp.add_argument("--window", type=float, help="seconds per prediction (default: the model's 2.5)")
        sp.add_argument("--hop", type=float,
                        help="seconds between windows, the timeline's resolution (default: half the window, 1.25)")
        sp.add_argument("--smooth", type=int, help="average probabilities over this many cells")
        sp.add_argument("--min-confidence", type=float, help="below this top probability a segment is 'uncertain'")
        sp.add_argument("--vad-threshold", type=float, help="silero VAD speech threshold")

    def timeline_opts(sp):
        segment_opts(sp)
        sp.add_argument("--format", choices=["table", "json", "csv"], default="table",
                        help="segments as a table, CSV, or JSON with per-cell probabilities")
        sp.add_argument("-o", "--output", help="write the table/CSV/JSON here instead of stdout")
        sp.add_argument("--plot", help="PNG: waveform with emotion segments and probability curves")

    sp = sub.add_parser("merge", help="join the results files of a sharded predict (sorted by path)")
    sp.add_argument("inputs", nargs="+", help="results files, e.g. out.shard-*-of-4.jsonl")
    sp.add_argument("-o", "--output", required=True, help="merged results file (.csv or .jsonl); never overwritten")
    sp.add_argument("--partial", action="store_true", help="merge even if some shards of the run are missing")
    sp.set_defaults(func=cmd_merge)

    sp = sub.add_parser("timeline", help="emotion over time in a long recording (VAD, windows, segments)")
    sp.add_argument("--speaker-norm", action="store_true",
                    help="speaker-adaptive: the whole recording is the speaker's reference (one talker, a session; "
                         "default model: the bundled speaker-adaptive one on torch; models that take no feature "
                         "statistics are judged against the recording's mean answer)")
    sp.add_argument("recording")
    timeline_opts(sp)
    sp.add_argument("--emotions", metavar="LIST", help="segments and cells among these emotions only (as predict's)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    model_opts(sp)
    sp.set_defaults(func=cmd_timeline)

    sp = sub.add_parser("listen", help="live microphone: rolling emotion display, Ctrl-C to stop")
    sp.add_argument("--device", help="input device name or index (default: the system's)")
    sp.add_argument("--input", help="play this file as if it were the microphone (demos, tests)")
    sp.add_argument("--fast", action="store_true", help="with --input: as fast as possible, not real time")
    sp.add_argument("--save", help="write the session timeline here at the end (.json or .csv)")
    sp.add_argument("--plot", help="PNG of the session timeline at the end")
    sp.add_argument("--plain", action="store_true", help="one line per timeline cell instead of the live panel")
    sp.add_argument("--speaker-norm", action="store_true",
                    help="one speaker throughout: judge each window against that speaker's mean answer so far "
                         "(from a few seconds of speech on)")
    sp.add_argument("--emotions", metavar="LIST", help="show and save these emotions only (as predict's)")
    segment_opts(sp)
    model_opts(sp)
    sp.set_defaults(func=cmd_listen)

    sp = sub.add_parser("explain", help="Grad-CAM: which time-frequency regions drove the decision")
    sp.add_argument("clip")
    sp.add_argument("-o", "--output", required=True, help="PNG to write")
    sp.add_argument("--target", help="explain this emotion instead of the predicted one")
    sp.add_argument("--stage", type=int, help="ResNet stage 1-4 for the map (default 4; 3 is finer, less specific)")
    model_opts(sp, backend=False)
    sp.set_defaults(func=cmd_explain)

    sp = sub.add_parser("demo", help="predict the bundled example clips with the bundled model")
    model_opts(sp)
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("export", help="write one ONNX graph: waveform in, probabilities out")
    sp.add_argument("-o", "--output", required=True, help=".onnx file to write")
    sp.add_argument("--quantize", nargs="?", const="dynamic", choices=["dynamic", "static"],
                    help="int8 convolutions: 'static' (input ranges fixed from --calibration clips; the fast one) "
                         "or 'dynamic' (int8 weights only, the default of a bare --quantize)")
    sp.add_argument("--calibration", nargs="+", metavar="PATH",
                    help="audio files or folders for --quantize static (clips like those the model will hear)")
    sp.add_argument("--calibration-clips", type=int, default=64,
                    help="recordings taken, evenly spread, from --calibration (default 64)")
    sp.add_argument("--half", action="store_true", help="float16 weights in the file, float32 compute (half the size)")
    sp.add_argument("--model", help="model folder (default: the bundled model)")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("show", help="waveform, spectrogram, mel-spectrogram and MFCC of a clip")
    sp.add_argument("clip")
    sp.add_argument("-o", "--output", required=True, help="PNG to write")
    sp.set_defaults(func=cmd_show)

    sp = sub.add_parser("data", help="inspect a corpus before training on it")
    data_sub = sp.add_subparsers(dest="data_command", required=True)
    sp = data_sub.add_parser("check", help="counts, durations, formats, unreadable files and identical audio")
    sp.add_argument("dir", help="the corpus folder or zip (--corpus manifest: the manifest file)")
    sp.add_argument("--corpus", required=True,
                    help="reader: ravdess, ravdess-song, savee, tess, crema-d, emodb, folder, manifest")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp.add_argument("--workers", type=_positive, default=None,
                    help="threads decoding files (default: the cores this process may use)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_data_check)

    sp = sub.add_parser("serve", help="HTTP API and web page (flags override EMOVOX_* environment variables)")
    sp.add_argument("--model", help="model folder or .onnx file (default: the bundled model) [EMOVOX_MODEL]")
    sp.add_argument("--backend", choices=["torch", "onnx"], help="default torch [EMOVOX_BACKEND]")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument("--workers", type=int, help="server processes, each with its own model (default 1) [EMOVOX_WORKERS]")
    sp.add_argument("--api-key", help="require this key on /v1/* [EMOVOX_API_KEY]")
    sp.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without an API key")
    sp.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                    help="allow calls from pages of this origin (repeatable; default: CORS off) [EMOVOX_CORS_ORIGINS]")
    sp.add_argument("--max-upload-mb", type=float, help="largest upload (default 20) [EMOVOX_MAX_UPLOAD_MB]")
    sp.add_argument("--max-seconds", type=float, help="longest recording (default 600) [EMOVOX_MAX_SECONDS]")
    sp.add_argument("--max-concurrent", type=int, help="inferences at once per worker "
                    "(default CPUs / (workers x threads)) [EMOVOX_MAX_CONCURRENT]")
    sp.add_argument("--max-queue", type=int, help="requests waiting for a slot before 503 (default 64) [EMOVOX_MAX_QUEUE]")
    sp.add_argument("--timeout", type=float, help="seconds per request (default 60) [EMOVOX_TIMEOUT]")
    sp.add_argument("--threads", type=int, help="threads per inference (default: $OMP_NUM_THREADS, else "
                    "cores / (workers x slots)) [EMOVOX_THREADS]")
    sp.add_argument("--min-confidence", type=float, help="answer 'uncertain' below this [EMOVOX_MIN_CONFIDENCE]")
    sp.add_argument("--min-speech-seconds", type=float,
                    help="answer 'no_speech' under this much speech (default 0.3) [EMOVOX_MIN_SPEECH_SECONDS]")
    sp.add_argument("--measure-speech", action="store_true", default=None,
                    help="report speech answers' seconds of speech too (the VAD hears whole recordings) "
                         "[EMOVOX_MEASURE_SPEECH]")
    sp.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sp.set_defaults(func=cmd_serve)

    def config_opts(sp):
        sp.add_argument("--config", help="YAML recipe (configs/*.yaml); defaults otherwise")
        sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a config value, e.g. --set training.epochs=5 (repeatable)")
        sp.add_argument("--data", help="RAVDESS folder or zip (default: $EMOVOX_RAVDESS or ../shared/data/ravdess)")
        sp.add_argument("--corpus", action="append", metavar="NAME[=DIR]",
                        help="training corpus (repeatable: several are trained on together), e.g. --corpus ravdess "
                             "--corpus savee=/data/SAVEE; default: the config's data.corpus")
        sp.add_argument("--out", required=True, help="output folder")

    sp = sub.add_parser("train", help="train a model; the run folder holds metrics, plots and checkpoints")
    config_opts(sp)
    sp.add_argument("--fold", help="train on one protocol fold, e.g. emobox:1 (default: all actors but validation)")
    sp.add_argument("--lr-from", help="lr_find.json from `emovox lr-find`: use its bounds for the one-cycle run")
    sp.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("lr-find", help="LR range test (Smith): plot and suggested one-cycle bounds")
    config_opts(sp)
    sp.add_argument("--fold", help="measure on one protocol fold's training actors, e.g. emobox:1")
    sp.set_defaults(func=cmd_lr_find)

    sp = sub.add_parser("evaluate", help="run an evaluation protocol and print/save its table")
    config_opts(sp)
    sp.add_argument("--protocol", choices=["emobox", "random", "loso", "cross", "loco"], default="emobox",
                    help="within a corpus: emobox | random | loso; across corpora: cross (with --train/--test) | "
                         "loco (leave one corpus out over --train and --test corpora)")
    sp.add_argument("--folds", help="comma-separated subset of folds, e.g. 1,2")
    sp.add_argument("--train", action="append", metavar="NAME[=DIR]", help="cross-corpus: a training corpus (repeatable)")
    sp.add_argument("--test", action="append", metavar="NAME[=DIR]", help="cross-corpus: the test corpus")
    sp.add_argument("--test-list", help="cross-corpus: CSV of test files (column 'file', relative to the test corpus), "
                                        "e.g. ../shared/data/savee/emobox-track2-savee-4class.csv")
    sp.set_defaults(func=cmd_evaluate)
    return p


def _yaml_error() -> type[Exception]:
    """yaml's error class if a command loaded yaml (reading a config), else a class nothing raises:
    predicting never pays for importing yaml."""
    yaml = sys.modules.get("yaml")
    return yaml.YAMLError if yaml is not None else _Never


class _Never(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .audio import AudioError
    from .live_input import MicrophoneError

    try:
        return args.func(args)
    except (AudioError, OSError, ValueError, KeyError, MicrophoneError, _yaml_error()) as err:
        print(f"emovox: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emovox: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
