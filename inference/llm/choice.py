"""`--answer_mode choice` on a local causal LM: every option scored as the reply to the chat.

For one chat, the prompt (through the tokenizer's chat template, with the generation prompt) is
run once; its key/value cache is repeated for the options, and one batched forward pass over the
right-padded option replies gives each option's log-likelihood. An option's reply is what the
chat template writes for an assistant message holding it, so the end-of-turn token is scored too
and "Person" is not rewarded for being the start of a longer reply.

The probabilities are a softmax over the options' *total* (summed, not per-token mean)
log-likelihoods: the model's probability of each complete reply, renormalised over the options.
A sum favours short options only as much as the model itself does; a mean would not be a
probability of the reply.
"""
from dataclasses import dataclass

import torch


@dataclass
class Scored:
    probs: list  # per option, summing to 1
    logprobs: list  # per option, total log-likelihood of its reply
    prompt_tokens: int
    option_tokens: int  # tokens scored over all options


class OptionScorer:
    def __init__(self, model, tokenizer, options):
        if not options:
            raise ValueError("no options to choose from")
        self.model, self.tokenizer, self.options = model, tokenizer, list(options)
        self.device = next(model.parameters()).device

    def _reply_ids(self, chat, prefix):
        """Token ids of each option's reply: the template's text after the generation prompt."""
        ids = []
        for option in self.options:
            full = self.tokenizer.apply_chat_template(chat + [{"role": "assistant", "content": option}],
                                                      tokenize=False)
            text = full[len(prefix):] if full.startswith(prefix) else option
            ids.append(self.tokenizer(text, add_special_tokens=False)["input_ids"] or
                       [self.tokenizer.eos_token_id])
        return ids

    @torch.inference_mode()
    def score(self, chat):
        prefix = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        prompt = self.tokenizer(prefix, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.device)
        replies = self._reply_ids(chat, prefix)
        n, width = len(replies), max(len(r) for r in replies)
        out = self.model(input_ids=prompt, use_cache=True, logits_to_keep=1)
        first = out.logits[0, -1].log_softmax(-1)  # predicts each reply's first token
        total = torch.stack([first[r[0]] for r in replies]).float()
        if width > 1:
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            ids = torch.full((n, width), pad, dtype=torch.long, device=self.device)
            mask = torch.zeros((n, prompt.shape[1] + width), dtype=torch.long, device=self.device)
            mask[:, :prompt.shape[1]] = 1
            for i, r in enumerate(replies):
                ids[i, :len(r)] = torch.tensor(r)
                mask[i, prompt.shape[1]:prompt.shape[1] + len(r)] = 1
            cache = out.cache
            cache.batch_repeat_interleave(n)
            logits = self.model(input_ids=ids, attention_mask=mask, cache=cache).logits
            logp = logits[:, :-1].float().log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
            follows = mask[:, prompt.shape[1] + 1:].bool()  # reply tokens after the first
            total = total + (logp * follows).sum(-1)
        probs = total.softmax(-1)
        return Scored(probs.tolist(), total.tolist(), prompt.shape[1], sum(len(r) for r in replies))
