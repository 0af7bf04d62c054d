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

The prompts of one run share a long start (the label descriptions, before the sentence): the
tokens the first two prompts share are run once, and every later prompt that starts with them
runs only its own end on a copy of that cache (`shared_prefix=False` runs each prompt whole).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

MIN_SHARED = 16  # tokens two prompts must share before their common start is cached


@dataclass
class Scored:
    probs: list  # per option, summing to 1
    logprobs: list  # per option, total log-likelihood of its reply
    prompt_tokens: int
    option_tokens: int  # tokens scored over all options


class OptionScorer:
    def __init__(self, model, tokenizer, options, shared_prefix=True):
        if not options:
            raise ValueError("no options to choose from")
        self.model, self.tokenizer, self.options = model, tokenizer, list(options)
        self.device = next(model.parameters()).device
        self.shared_prefix = shared_prefix
        self._first = None  # the first prompt's ids, until a second one fixes the shared start
        self._prefix = self._prefix_cache = None

    def _run_prompt(self, prompt):
        """The model's output for the prompt ids [1, n] (its cache included), reusing the cache of
        the run's shared prompt start when the prompt begins with it."""
        if self.shared_prefix and self._prefix is None:
            ids = prompt[0].tolist()
            if self._first is None:
                self._first = ids
            else:
                shared = next((i for i, (a, b) in enumerate(zip(self._first, ids)) if a != b), min(len(ids), len(self._first)))
                shared -= 1  # the last shared token may merge differently with what follows it
                if shared >= MIN_SHARED:
                    self._prefix = prompt[:, :shared]
                    self._prefix_cache = self.model(input_ids=self._prefix, use_cache=True, logits_to_keep=1).cache
                self._first = None
        n = 0 if self._prefix is None else self._prefix.shape[1]
        if n and prompt.shape[1] > n and torch.equal(prompt[:, :n], self._prefix):
            return self.model(input_ids=prompt[:, n:], cache=copy.deepcopy(self._prefix_cache), use_cache=True,
                              logits_to_keep=1)
        return self.model(input_ids=prompt, use_cache=True, logits_to_keep=1)

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
    def score(self, chat: list[dict[str, str]]) -> Scored:
        prefix = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        prompt = self.tokenizer(prefix, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.device)
        replies = self._reply_ids(chat, prefix)
        n, width = len(replies), max(len(r) for r in replies)
        out = self._run_prompt(prompt)
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
