"""inference/local/ray_tag.py on a local Ray instance (skipped where Ray is not installed): each
shard's records are the records local_inference.py writes for that file, byte for byte."""
import os
import signal

import pytest

ray = pytest.importorskip("ray", reason="Ray is optional (requirement-ray.txt); CI does not install it")

import local_inference  # noqa: E402
from dataloaders.readers import read_dataset  # noqa: E402
from inference.local import ray_tag  # noqa: E402
from tests.helpers import SAMPLE_DIR  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    def too_long(*_):
        raise TimeoutError("the local Ray run took over 4 minutes")

    previous = signal.signal(signal.SIGALRM, too_long)  # bounded: a stuck cluster fails the test, never hangs it
    signal.alarm(240)
    ray.init(num_cpus=2, address="local", include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        ray.shutdown()


def test_ray_shards_equal_the_single_process_records(local_ray, spanner_ckpt, tmp_path, monkeypatch):
    sentences = read_dataset(os.path.join(SAMPLE_DIR, "test.txt"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("".join(" ".join(s.words) + "\n" for s in sentences[:60]), encoding="utf-8")
    (corpus / "b.txt").write_text("".join(" ".join(s.words) + "\n" for s in sentences[60:]) + "\n", encoding="utf-8")
    (corpus / "empty.txt").write_text("\n", encoding="utf-8")
    out = tmp_path / "out"
    ray_tag.main(["--input", str(corpus / "*.txt"), "--output", str(out), "--inference_model", spanner_ckpt,
                  "--actors", "1"])  # the other CPU reads
    for name in ("a", "b", "empty"):
        single = tmp_path / f"{name}.jsonl"
        local_inference.main(["--inference_model", spanner_ckpt, "--input_file", str(corpus / f"{name}.txt"),
                              "--save_file", str(single)])
        assert (out / f"{name}.jsonl").read_bytes() == single.read_bytes()
    assert not list(out.glob("*.part"))
    # a rerun skips the finished shards; other settings are refused
    ray_tag.main(["--input", str(corpus / "*.txt"), "--output", str(out), "--inference_model", spanner_ckpt])
    with pytest.raises(SystemExit, match="written with other settings"):
        ray_tag.main(["--input", str(corpus / "*.txt"), "--output", str(out), "--inference_model", spanner_ckpt,
                      "--candidate_threshold", "0.9"])
