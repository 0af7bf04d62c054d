"""The local stage's run: read the input as it comes, tag it chunk by chunk into one record per
sentence, write the records as they come (continuing what a killed run of the same command
wrote) and score them as they pass (`LocalScores`). Memory does not grow with the input, apart
from the few bytes per predicted entity `LocalScores` keeps. Every function reads a `TagSettings`."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional

from tqdm import tqdm

from dataloaders.dataset import SpanDataset
from dataloaders.readers import STDIN, iter_dataset, split_path
from dataloaders.spans import span_arrays
from inference.local.decode import decode_batch
from inference.local.dev_calibration import DevCalibration
from inference.local.learned.error_predictor import predictor_path
from inference.local.learned.rescoring import Rescorer
from inference.local.parallel import WorkerFailed, in_processes
from inference.local.predict import check_uncertainty, default_uncertainty, predict_batches
from inference.local.uncertainty import LEARNED
from inference.reports.calibration import LocalScores
from inference.reports.table import format_table
from models.checkpoint import WEIGHTS
from utils.errors import DataError
from utils.memory import bound_heap, trim_heap
from utils.collector import long_lived
from utils.file_digest import file_digest
from utils.jsonl import JsonlWriter, iter_resumed

if TYPE_CHECKING:
    import argparse

    from dataloaders.readers import Sentence
    from inference.local.predict import Device
    from models.checkpoint import Featurizer
    from models.config import ModelConfig
    from models.span_ner import SpanNER

log = logging.getLogger("local_inference")
CHUNK = 512  # sentences decoded and written per step (batched by length inside); a worker's share
# The chunks start at multiples of CHUNK counted from the input's first sentence, whatever the
# run (one worker or many, fresh or continued): a sentence is always batched with the same
# others, so its floats, and the bytes written, are the same.


@dataclass(frozen=True)
class TagSettings:
    """local_inference.py's own flags (the LLM's are `LinkSettings`)."""
    inference_model: str
    save_file: str
    data_dir: Optional[str] = None
    test_mode: str = "ori"
    input_file: Optional[str] = None
    input_format: str = "auto"
    uncertainty_type: Optional[str] = None
    mc_samples: int = 10
    candidate_threshold: Optional[float] = None  # None: the checkpoint's dev-calibrated default
    paper_protocol: bool = False
    batch_size: int = 64
    device: str = "auto"
    workers: int = 1  # processes that tag chunks side by side (one torch thread each)
    plot_dir: Optional[str] = None
    html: Optional[str] = None
    overwrite: bool = False
    quantize: str = "none"  # "int8": dynamically quantized LSTM and linear layers (CPU)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TagSettings:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    @property
    def input_name(self) -> str:
        return self.input_file or f"{self.data_dir} ({self.test_mode})"


def calibrated(settings: TagSettings, config: ModelConfig, featurizer: Featurizer,
               device: Device = "cpu") -> tuple[TagSettings, DevCalibration, Rescorer]:
    """The settings with the uncertainty type and the candidate threshold (the checkpoint's dev
    default when not given) filled in, the checkpoint's `DevCalibration`, and the `Rescorer`."""
    calibration = DevCalibration.load(settings.inference_model)
    unc = check_uncertainty(config, settings.uncertainty_type)
    candidate = settings.candidate_threshold
    settings = dataclasses.replace(settings, uncertainty_type=unc, candidate_threshold=(
        calibration.candidate_default(unc) if candidate is None else candidate))
    return settings, calibration, Rescorer(settings.inference_model, config, featurizer, unc, calibration, device)


def load_input(settings: TagSettings, labels: Optional[list[str]]) -> Iterator[Sentence]:
    """The sentences to tag, read as they are needed: --input_file (- for stdin), else the
    --data_dir test split. The first is read at once, so that a file that does not read at all
    is refused before any output is opened; a problem further on stops the run there (what was
    written stays, for a rerun to continue)."""
    if settings.input_file:
        fmt = "text" if settings.input_file == STDIN and settings.input_format == "auto" else settings.input_format
        sentences = iter_dataset(settings.input_file, fmt, labels=labels)
    elif settings.data_dir:
        sentences = iter_dataset(split_path(settings.data_dir, "test", settings.test_mode), labels=labels)
    else:
        raise DataError("give --input_file or --data_dir")
    first = next(sentences, None)
    return sentences if first is None else itertools.chain([first], sentences)


def sentence_record(i: int, sent: Sentence, entities: list[dict]) -> dict:
    rec = {"id": i, "sentence": " ".join(sent.words), "tokens": sent.words, "entity": entities}
    if sent.text is not None:  # the entity as the line writes it, spaces and all
        assert sent.char_spans is not None  # the raw-text reader sets both
        rec["text"] = sent.text
        for ent in entities:
            s, e = ent["span"]
            ent["char_span"] = [sent.char_spans[s][0], sent.char_spans[e][1]]
            ent["entity"] = sent.text[slice(*ent["char_span"])]
    if sent.entities is not None:
        rec["gold"] = [list(g) for g in sent.entities]
    return rec


def iter_records(model: SpanNER, featurizer: Featurizer, config: ModelConfig, sentences: Iterable[Sentence],
                 settings: TagSettings, device: Device, start: int = 0, skip: int = 0,
                 rescorer: Optional[Rescorer] = None) -> Iterator[dict]:
    """Records for `sentences` (the input's from index `start`, a multiple of CHUNK), in input
    order, the first `skip` left out, decoded chunk by chunk as the sentences are read (the chunks
    shared out to `settings.workers` processes when more than one: the same records);
    `rescorer` (inference/local/learned/rescoring.py) applies the checkpoint's dev calibration."""
    if start % CHUNK:
        raise ValueError(f"chunks start at multiples of {CHUNK}, not at {start}")
    chunks = _chunks(iter(sentences), start)
    bound_heap()
    tag = functools.partial(chunk_records, model, featurizer, config, settings, device, rescorer)
    bar = tqdm(initial=start + skip, desc="local inference", unit="sent")
    try:
        with long_lived():  # the model and the featurizer's tables out of the collector's passes
            for records in (map(tag, chunks) if settings.workers <= 1 else
                            in_processes(tag, chunks, settings.workers)):
                trim_heap()  # a chunk's tensors are freed: memory stays flat however long the input
                bar.update(len(records) - min(skip, len(records)))
                yield from records[skip:]
                skip = max(0, skip - len(records))
    except WorkerFailed as err:
        raise WorkerFailed(f"--workers: {err}; the output so far is kept, rerun to continue") from None
    finally:
        bar.close()


def _chunks(sentences: Iterator[Sentence], start: int) -> Iterator[tuple[int, list[Sentence]]]:
    """(index of the first sentence, CHUNK sentences), read as they are asked for."""
    for lo in itertools.count(start, CHUNK):
        chunk = list(itertools.islice(sentences, CHUNK))
        if not chunk:
            return
        yield lo, chunk


def chunk_records(model: SpanNER, featurizer: Featurizer, config: ModelConfig, settings: TagSettings,
                  device: Device, rescorer: Optional[Rescorer], item: tuple[int, list[Sentence]]) -> list[dict]:
    """The records of one chunk, `item` = (the index of its first sentence, its sentences)."""
    lo, chunk = item
    labels, uncertainty_type = config.labels, settings.uncertainty_type
    if settings.paper_protocol and any(sent.entities is None for sent in chunk):
        raise DataError(f"{settings.input_name}: --paper_protocol lists the gold spans, so it needs labelled input")
    if uncertainty_type == LEARNED:  # decoded with the default type, then rescored
        uncertainty_type = default_uncertainty(config)
    cut = settings.candidate_threshold
    assert cut is not None  # `calibrated` sets the checkpoint's default before any chunk is tagged
    threshold = cut if cut >= 0 else None
    active = rescorer if rescorer is not None and rescorer.active else None
    dataset = SpanDataset(chunk, featurizer, labels, config.max_span_len, settings.input_name)
    entities: dict[int, list[dict]] = {}  # by the sentence's index in the chunk
    second_outputs = active.outputs(chunk, settings.input_name, batch_size=settings.batch_size) if active else []
    for indices, counts, probs, unc in predict_batches(model, dataset, config, uncertainty_type,
                                                       mc_samples=settings.mc_samples, batch_size=settings.batch_size,
                                                       device=device, progress=False):
        sents = [chunk[j] for j in indices]
        starts, ends = span_arrays([len(sent.words) for sent in sents], config.max_span_len)
        words = [sent.words for sent in sents]
        decoded, rows = decode_batch(starts, ends, counts, probs, unc, labels, threshold,
                                     [sent.entities for sent in sents], settings.paper_protocol, words)
        if active:
            active.rescore_batch(decoded, rows, [dataset.spans[j] for j in indices], probs, unc, words,
                                 [second_outputs[j] for j in indices])
        entities.update(zip(indices, decoded))
    return [sentence_record(lo + j, sent, entities[j]) for j, sent in enumerate(chunk)]


def score_records(settings: TagSettings, config: ModelConfig, scores: LocalScores, seconds: float,
                  n_new: int) -> dict[str, Any]:
    """The local model's metrics (and plots) from `scores`, accumulated over every record of
    SAVE_FILE, `n_new` of them tagged in `seconds` (the LLM's time included, online); the table
    goes to the console."""
    metrics = scores.metrics()
    metrics.update(labels=config.labels, uncertainty_type=settings.uncertainty_type,
                   checkpoint=settings.inference_model, input=settings.input_name,
                   paper_protocol=settings.paper_protocol, candidate_threshold=settings.candidate_threshold,
                   seconds=round(seconds, 2), sentences_per_second=round(n_new / seconds, 1) if seconds else None)
    print(format_table(metrics))
    if settings.plot_dir and scores.scored:
        scores.plot(settings.plot_dir)
    return metrics


def fingerprint(settings: TagSettings, config: ModelConfig) -> dict[str, Any]:
    """What shapes the local records, kept beside SAVE_FILE (`utils.owned_output`): the checkpoint
    (its weights' size and time), the uncertainty (and the learned one's predictor) and the candidates. The input is checked by
    content instead (`written_records`): a file or the same text piped in continue alike."""
    weights = os.stat(os.path.join(settings.inference_model, WEIGHTS))
    return {"stage": "local", "checkpoint": os.path.abspath(settings.inference_model),
            "weights": [weights.st_size, weights.st_mtime_ns], "labels": config.labels,
            "uncertainty_type": settings.uncertainty_type,
            "mc_samples": settings.mc_samples if settings.uncertainty_type == "mc_dropout" else None,
            "candidate_threshold": settings.candidate_threshold, "paper_protocol": settings.paper_protocol,
            **({"quantize": settings.quantize} if settings.quantize != "none" else {}),
            **({"error_predictor": file_digest(predictor_path(settings.inference_model))}
               if settings.uncertainty_type == LEARNED else {})}


def resume(settings: TagSettings, written: Iterable[dict], sentences: Iterator[Sentence],
           on_record: Callable[[dict], None]) -> tuple[int, int, Iterator[Sentence]]:
    """Walk the records a killed run of the same command already wrote (`written`, read as they
    come) alongside the input: each must hold its sentence's words, or the output belongs to
    other input. `on_record` sees each of them. Returns (how many were written, the index of
    the first sentence of the chunk holding the next one, the sentences from that index on):
    that chunk is tagged again whole, its written records left out, so that its batches are
    those of an uninterrupted run. Holds one chunk of sentences, never the records."""
    done = 0
    chunk: list[Sentence] = []  # the written sentences of the chunk being read
    for rec in written:
        sent = next(sentences, None)
        if sent is None or not isinstance(rec, dict) or rec.get("tokens") != sent.words:
            raise DataError(f"{settings.save_file} holds output for other input; use --overwrite or another --save_file")
        if done % CHUNK == 0:
            chunk = []
        chunk.append(sent)
        on_record(rec)
        done += 1
    if done:
        log.info("%s: continuing after %d sentences already written", settings.save_file, done)
    if done % CHUNK == 0:
        chunk = []
    return done, done - len(chunk), itertools.chain(chunk, sentences)


def written_records(save_file: str) -> Iterator[dict]:
    """The complete records of SAVE_FILE, one at a time (a killed run's partial last line cut
    off); none with --overwrite (`start_output` emptied it). A local output is never continued
    online or back (the "online" setting, `start_output`)."""
    return iter_resumed(save_file)


def write_records(save_file: str, records: Iterable[dict], append: bool, on_record: Callable[[dict], None]) -> int:
    """Append `records` to SAVE_FILE as they come (after the written ones when `append`, else
    in place of any), each then shown to `on_record`; how many were written."""
    n = 0
    with JsonlWriter(save_file, append=append) as out:
        for rec in records:
            out.write(rec)
            on_record(rec)
            n += 1
    return n
