"""The local stage's run: read the input, tag it chunk by chunk into one record per sentence,
score the records, and write them (continuing what a killed run of the same command wrote).
Every function reads a `TagSettings`."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Union

from tqdm import tqdm

from dataloaders.dataset import SpanDataset
from dataloaders.readers import STDIN, read_dataset, split_path
from inference.local.decode import decode_sentence
from inference.local.dev_calibration import DevCalibration
from inference.local.learned.error_predictor import predictor_path
from inference.local.learned.rescoring import Rescorer
from inference.local.parallel import in_processes
from inference.local.predict import check_uncertainty, default_uncertainty, predict
from inference.local.uncertainty import LEARNED
from inference.reports.calibration import entity_outcomes, local_metrics
from inference.reports.table import format_table
from models.checkpoint import WEIGHTS
from utils.errors import DataError
from utils.file_digest import file_digest
from utils.jsonl import JsonlWriter, resume_jsonl

if TYPE_CHECKING:
    import argparse

    from dataloaders.readers import Sentence
    from inference.local.predict import Device
    from models.checkpoint import Featurizer
    from models.config import ModelConfig
    from models.span_ner import SpanNER

log = logging.getLogger("local_inference")
CHUNK = 512  # sentences decoded and written per step (batched by length inside); a worker's share


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


def load_input(settings: TagSettings, labels: Optional[list[str]]) -> list[Sentence]:
    """The sentences to tag: --input_file (- for stdin), else the --data_dir test split."""
    if settings.input_file:
        fmt = "text" if settings.input_file == STDIN and settings.input_format == "auto" else settings.input_format
        return read_dataset(settings.input_file, fmt, labels=labels)
    if not settings.data_dir:
        raise DataError("give --input_file or --data_dir")
    return read_dataset(split_path(settings.data_dir, "test", settings.test_mode), labels=labels)


def sentence_record(i: int, sent: Sentence, entities: list[dict]) -> dict:
    rec = {"id": i, "sentence": " ".join(sent.words), "tokens": sent.words, "entity": entities}
    if sent.text is not None:  # the entity as the line writes it, spaces and all
        rec["text"] = sent.text
        for ent in entities:
            s, e = ent["span"]
            ent["char_span"] = [sent.char_spans[s][0], sent.char_spans[e][1]]
            ent["entity"] = sent.text[slice(*ent["char_span"])]
    if sent.entities is not None:
        rec["gold"] = [list(g) for g in sent.entities]
    return rec


def iter_records(model: SpanNER, featurizer: Featurizer, config: ModelConfig, sentences: list[Sentence],
                 settings: TagSettings, device: Device, start: int = 0,
                 rescorer: Optional[Rescorer] = None) -> Iterator[dict]:
    """Records for sentences[start:], in input order, decoded chunk by chunk (the chunks shared
    out to `settings.workers` processes when more than one: the same records); `rescorer`
    (inference/local/learned/rescoring.py) applies the checkpoint's dev calibration."""
    bounds = [(lo, min(lo + CHUNK, len(sentences))) for lo in range(start, len(sentences), CHUNK)]
    tag = functools.partial(chunk_records, model, featurizer, config, sentences, settings, device, rescorer)
    bar = tqdm(total=len(sentences), initial=start, desc="local inference", unit="sent")
    for records in (map(tag, bounds) if settings.workers <= 1 else in_processes(tag, bounds, settings.workers)):
        bar.update(len(records))
        yield from records
    bar.close()


def chunk_records(model: SpanNER, featurizer: Featurizer, config: ModelConfig, sentences: list[Sentence],
                  settings: TagSettings, device: Device, rescorer: Optional[Rescorer],
                  bounds: tuple[int, int]) -> list[dict]:
    """The records of sentences[lo:hi], `bounds` = (lo, hi)."""
    lo, hi = bounds
    labels, uncertainty_type = config.labels, settings.uncertainty_type
    if uncertainty_type == LEARNED:  # decoded with the default type, then rescored
        uncertainty_type = default_uncertainty(config)
    threshold = settings.candidate_threshold if settings.candidate_threshold >= 0 else None
    active = rescorer is not None and rescorer.active
    chunk = sentences[lo:hi]
    dataset = SpanDataset(chunk, featurizer, labels, config.max_span_len, settings.input_name)
    entities = [None] * len(chunk)
    second_outputs = rescorer.outputs(chunk, settings.input_name, batch_size=settings.batch_size) if active else None
    for j, spans, probs, unc in predict(model, dataset, config, uncertainty_type, mc_samples=settings.mc_samples,
                                        batch_size=settings.batch_size, device=device, progress=False):
        sent = chunk[j]
        entities[j] = decode_sentence(spans, probs, unc, labels, threshold, sent.entities,
                                      settings.paper_protocol, sent.words)
        if active:
            rescorer.rescore(entities[j], spans, probs, unc, sent.words, second_outputs[j])
    return [sentence_record(lo + j, sent, ents) for j, (sent, ents) in enumerate(zip(chunk, entities))]


def score_records(settings: TagSettings, config: ModelConfig, records: list[dict], seconds: float,
                  n_new: int) -> dict[str, Any]:
    """The local model's metrics (and plots) for `records`, `n_new` of them tagged in `seconds`
    (the LLM's time included, online); the table goes to the console."""
    labelled = all("gold" in r for r in records) and records
    preds = [r["entity"] for r in records]
    golds = [[tuple(g) for g in r["gold"]] for r in records] if labelled else None
    metrics = local_metrics(preds, golds)
    metrics.update(labels=config.labels, uncertainty_type=settings.uncertainty_type,
                   checkpoint=settings.inference_model, input=settings.input_name,
                   paper_protocol=settings.paper_protocol, candidate_threshold=settings.candidate_threshold,
                   seconds=round(seconds, 2), sentences_per_second=round(n_new / seconds, 1) if seconds else None)
    print(format_table(metrics))
    if settings.plot_dir and labelled:
        from inference.reports.plots import plot_reliability, plot_risk_coverage

        conf, unc, correct = entity_outcomes(preds, golds)
        plot_reliability(conf, correct, f"{settings.plot_dir}/reliability.png")
        plot_risk_coverage(unc, ~correct, f"{settings.plot_dir}/risk_coverage.png")
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
            **({"error_predictor": file_digest(predictor_path(settings.inference_model))}
               if settings.uncertainty_type == LEARNED else {})}


def written_records(settings: TagSettings, sentences: list[Sentence]) -> list[dict]:
    """The records a killed run of the same command already wrote (none with --overwrite); a
    local output is never continued online or back (the "online" setting, `start_output`)."""
    done = resume_jsonl(settings.save_file)
    if [r.get("tokens") for r in done] != [s.words for s in sentences[:len(done)]]:
        raise DataError(f"{settings.save_file} holds output for other input; use --overwrite or another --save_file")
    if done:
        log.info("%s: continuing after %d sentences already written", settings.save_file, len(done))
    return done


def write_records(save_file: str, records: Iterable[dict], done: list[dict]) -> None:
    """Append `records` to SAVE_FILE as they come, after the `done` ones, and to `done`."""
    with JsonlWriter(save_file, append=bool(done)) as out:
        for rec in records:
            out.write(rec)
            done.append(rec)
