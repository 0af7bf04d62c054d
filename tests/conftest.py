"""Shared test fixtures: the repository's paths, a tiny random BERT, and small data dirs.

- `sample_dir` / `sample_sentences`: data/sample (CoNLL columns, always in the repository).
- `shared_data`: ../shared/data, or the test is skipped with a reason when it is absent.
- `tiny_bert_dir`: a 2-layer, 32-wide random BERT with a WordPiece vocabulary trained here,
  saved like a Hugging Face checkpoint (built once per session, offline).
- `write_data_dir`: writes train/dev(/test) files from `Sentence` lists into a temporary dir.
- `tiny_llama`: a tiny random chat Llama (once per session, offline).
- `spanner_ckpt` / `ener_ckpt`: tiny GloVe checkpoints trained on data/sample (once per session).

Tests run tiny models on one torch thread (subprocesses too, through OMP_NUM_THREADS): on a
busy 2-core machine, two threads spin against each other and run many times slower.
"""
import os
import warnings

os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from dataloaders.convert import write_spanner_json  # noqa: E402
from dataloaders.readers import read_dataset  # noqa: E402
from tests.helpers import SAMPLE_DIR, SHARED_DATA, to_bio  # noqa: E402



@pytest.fixture(scope="session")
def sample_dir():
    """data/sample: train.txt (400 sentences), dev.txt and test.txt (100 each), BIO columns."""
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_sentences():
    """The `Sentence`s of data/sample/train.txt."""
    return read_dataset(os.path.join(SAMPLE_DIR, "train.txt"))


@pytest.fixture(scope="session")
def shared_data():
    """Path of ../shared/data (read-only real data); skips the test when it is absent."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


def _vocab_corpus(n=300):
    """A few hundred sentences to train the WordPiece vocabulary on: CoNLL-2003 when
    present (real subword statistics), else the synthetic sample."""
    conll = os.path.join(SHARED_DATA, "conll03", "spanner.train")
    path = conll if os.path.isfile(conll) else os.path.join(SAMPLE_DIR, "train.txt")
    return [" ".join(s.words) for s in read_dataset(path)[:n]]


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """Directory of a randomly initialised cased BERT (2 layers, hidden 32, 2 heads,
    intermediate 64) with its fast WordPiece tokenizer: loads with AutoModel /
    AutoTokenizer.from_pretrained, so it stands in for `--bert_config_dir bert-base-cased`."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    wordpiece = BertWordPieceTokenizer(lowercase=False)
    wordpiece.train_from_iterator(_vocab_corpus(), vocab_size=1000, min_frequency=1, show_progress=False)
    tokenizer = BertTokenizerFast(vocab=wordpiece.get_vocab(), do_lower_case=False)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    path = str(tmp_path_factory.mktemp("tiny_bert"))
    torch.manual_seed(0)  # the same random weights in every session: tests that train on them repeat
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _bio_lines(sentence):
    tags = to_bio(sentence.entities or [], len(sentence.words))
    return "".join(f"{w} {t}\n" for w, t in zip(sentence.words, tags))


def _write_split(sentences, path, fmt):
    if fmt == "spanner":
        write_spanner_json(sentences, path)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(_bio_lines(s) for s in sentences))


@pytest.fixture(scope="session")
def write_data_dir(tmp_path_factory):
    """`write_data_dir(train, dev=None, test=None, fmt="column", labels=None, name="data")`:
    writes each given list of `Sentence` as train.txt/dev.txt/test.txt (BIO columns) or
    spanner.train/dev/test (fmt="spanner"), plus labels.txt when `labels` is given, into a
    new temporary directory named after `name`, and returns its path. `dev` defaults to
    `train`. Session-scoped, so module-scoped fixtures can use it too."""

    def write(train, dev=None, test=None, fmt="column", labels=None, name="data"):
        if fmt not in ("column", "spanner"):
            raise ValueError(f"fmt must be column or spanner, got {fmt!r}")
        path = tmp_path_factory.mktemp(name)
        splits = {"train": train, "dev": train if dev is None else dev, "test": test}
        for split, sentences in splits.items():
            if sentences is not None:
                _write_split(sentences, str(path / (f"spanner.{split}" if fmt == "spanner" else f"{split}.txt")), fmt)
        if labels is not None:
            (path / "labels.txt").write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
        return str(path)

    return write


TINY_GLOVE = ["--encoder", "glove", "--lstm_hidden", "16", "--iteration", "2", "--batch_size", "16"]


def train_tiny(tmp_path_factory, trainer):
    """Train `trainer` (the train_spanner or train_ener module) on data/sample; its checkpoint dir."""
    path = str(tmp_path_factory.mktemp("checkpoint"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and logging
        trainer.main(["--data_dir", SAMPLE_DIR, "--model_save_dir", path, *TINY_GLOVE])
    return path


@pytest.fixture(scope="session")
def spanner_ckpt(tmp_path_factory):
    import train_spanner

    return train_tiny(tmp_path_factory, train_spanner)


@pytest.fixture(scope="session")
def ener_ckpt(tmp_path_factory):
    import train_ener

    return train_tiny(tmp_path_factory, train_ener)


CORPUS = ["the cat sat on a mat", "a dog ran in the park", "green ideas sleep furiously",
          "select type of this context output"]
CHAT_TEMPLATE = ("{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
                 "{% if add_generation_prompt %}<s> assistant : {% endif %}")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """A 1-layer, 16-wide random Llama with a word-level tokenizer and a chat template, saved
    like a Hugging Face checkpoint. No label name is in its vocabulary, so whatever it
    generates names no label."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(CORPUS + ["user assistant system :"], trainers.WordLevelTrainer(
        special_tokens=["<pad>", "<unk>", "<s>", "</s>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", pad_token="<pad>",
                                        bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
