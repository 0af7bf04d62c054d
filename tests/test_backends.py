"""The local-model backend on a tiny random Llama built here: no download, a few seconds on CPU."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from inference.llm.answers import parse_answer  # noqa: E402
from inference.llm.linker import Linker  # noqa: E402
from inference.llm.backends import HFBackend, make_backend  # noqa: E402
from inference.llm.prompt import DATASETS, PromptBuilder  # noqa: E402

# No label name is in the vocabulary, so whatever the random model says names no label.
CORPUS = ["the cat sat on a mat", "a dog ran in the park", "green ideas sleep furiously",
          "select type of this context output"]
CHAT_TEMPLATE = ("{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
                 "{% if add_generation_prompt %}<s> assistant : {% endif %}")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
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


def record(i):
    return {"id": i, "sentence": f"EU rejects German call {i}",
            "entity": [{"entity": "German", "span": [2, 2], "pred": "O", "uncertainty": 0.6},
                       {"entity": "EU", "span": [0, 0], "pred": "ORG", "uncertainty": 0.9},
                       {"entity": "call", "span": [3, 3], "pred": "O", "uncertainty": 0.1}]}


def test_batched_generation_through_the_chat_template(tiny_llama):
    backend = make_backend("qwen", llm_ckpt=tiny_llama, max_tokens=4, batch_size=3, seed=0)
    assert isinstance(backend, HFBackend) and backend.tokenizer.padding_side == "left"
    seen = []
    template = backend.tokenizer.apply_chat_template

    def spy(chats, **kw):
        seen.extend(chats)
        return template(chats, **kw)

    backend.tokenizer.apply_chat_template = spy
    prompts = ["the cat", "a dog ran in the park today and then", "green"]  # different lengths: padding
    replies = backend.complete_batch(prompts)
    assert [chat[-1] for chat in seen] == [{"role": "user", "content": p} for p in prompts]
    assert all(chat[0]["role"] == "system" for chat in seen)
    assert len(replies) == 3 and all(isinstance(r.text, str) for r in replies)
    assert all(1 <= r.completion_tokens <= 4 for r in replies)
    assert replies[1].prompt_tokens > replies[0].prompt_tokens > 0  # padding is not counted


def test_unparseable_random_replies_fall_back_to_the_local_label(tiny_llama):
    backend = HFBackend(tiny_llama, temperature=0.0, max_tokens=3, batch_size=2)
    linker = Linker(backend, PromptBuilder(DATASETS["conll03"]), threshold=0.4, max_attempts=2)
    linked = list(linker.link_records([record(0), record(1)]))
    asked = [s for rec in linked for s in rec["entity"] if s["uncertainty"] > 0.4]
    assert all(parse_answer(s["llm_raw"], DATASETS["conll03"]) is None for s in asked)
    assert [(s["llm_status"], s["llm_pred"]) for s in asked] == [("unparseable", "O"), ("unparseable", "ORG")] * 2
    summary = linker.summary()
    assert (summary["asked"], summary["unparseable"], summary["requests"]) == (4, 4, 4 * 2)
