"""PyTorch eager side of trainer's throughput benchmark (called by `cargo bench -p trainer`).

Same shapes as trainer/benches/throughput.rs: GPT-2 style, 4 layers, d 256, 4 heads,
context 256, batch 8, vocab 8192, float32, AdamW. Prints one JSON line:
{"train_tok_s": x, "lora_tok_s": z, "gen_tok_s": y}. Usage: bench_torch.py STEPS GEN_NEW_TOKENS
LoRA: frozen base, rank-8 adapters (alpha 16) on every c_attn and c_fc, AdamW on the adapters.

`bench_torch.py smollm2 DIR STEPS B T`: LoRA training of the HF directory DIR (SmolLM2-135M as
the Rust bench wrote it), rank-8 adapters (alpha 16) on every q_proj and v_proj, batch B × T;
prints {"lora_tok_s": x}.
"""

import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

torch.set_num_threads(int(__import__("os").environ.get("BENCH_THREADS", "2")))
torch.manual_seed(0)


def add_lora(linears, scale=2.0):
    """Rank-8 adapters on `linears` (y = x W^T + b): returns the adapter parameters."""
    params = []
    for lin in linears:
        n_in, n_out = lin.in_features, lin.out_features
        a = torch.nn.Parameter(torch.randn(8, n_in) / n_in ** 0.5)
        b = torch.nn.Parameter(torch.zeros(n_out, 8))
        params += [a, b]
        lin.register_forward_hook(lambda m, inp, out, a=a, b=b: out + (inp[0] @ a.t() @ b.t()) * scale)
    return params


def timed(step, steps):
    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - t0


if len(sys.argv) > 1 and sys.argv[1] == "smollm2":
    directory, steps, b, t = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    model = AutoModelForCausalLM.from_pretrained(directory, torch_dtype=torch.float32,
                                                 attn_implementation="eager")
    for p in model.parameters():
        p.requires_grad_(False)
    layers = model.model.layers
    adapters = add_lora([m for l in layers for m in (l.self_attn.q_proj, l.self_attn.v_proj)])
    opt = torch.optim.AdamW(adapters, lr=1e-4, weight_decay=0.0)
    v = model.config.vocab_size
    ids = torch.randint(0, 8192, (b, t))
    model.train()

    def lora_step():
        logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, v), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    print(json.dumps({"lora_tok_s": steps * b * t / timed(lora_step, steps)}))
    sys.exit(0)

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
NEW = int(sys.argv[2]) if len(sys.argv) > 2 else 128
B, T, V = 8, 256, 8192

cfg = GPT2Config(vocab_size=V, n_positions=T, n_embd=256, n_layer=4, n_head=4,
                 resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, activation_function="gelu_new")
model = GPT2LMHeadModel(cfg).float()
# Eager attention, not transformers' default SDPA: on this CPU it trains faster (GPT-2 step
# 3,255-3,291 vs 2,967-3,087 tok/s, 2026-11-30), so it is the stronger baseline.
model.config._attn_implementation = "eager"
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
ids = torch.randint(0, V, (B, T))


def step():
    logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


model.train()
step()  # warm-up
t0 = time.perf_counter()
for _ in range(STEPS):
    step()
train = STEPS * B * T / (time.perf_counter() - t0)

# LoRA: the same model frozen, adapters added to c_attn / c_fc (GPT-2 Conv1D: y = x W + b).
for p in model.parameters():
    p.requires_grad_(False)
adapters, hooks = [], []
for block in model.transformer.h:
    for conv in (block.attn.c_attn, block.mlp.c_fc):
        n_in, n_out = conv.weight.shape
        a = torch.nn.Parameter(torch.randn(8, n_in) / n_in ** 0.5)
        b = torch.nn.Parameter(torch.zeros(n_out, 8))
        adapters += [a, b]
        hooks.append(conv.register_forward_hook(lambda m, inp, out, a=a, b=b: out + (inp[0] @ a.t() @ b.t()) * 2.0))
opt = torch.optim.AdamW(adapters, lr=1e-4, weight_decay=0.0)
step()
t0 = time.perf_counter()
for _ in range(STEPS):
    step()
lora = STEPS * B * T / (time.perf_counter() - t0)
for h in hooks:
    h.remove()

model.eval()
prompt = torch.randint(0, V, (B, 16))


@torch.no_grad()
def generate():
    out = model(input_ids=prompt, use_cache=True)
    past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
    for _ in range(NEW - 1):
        out = model(input_ids=nxt, past_key_values=past, use_cache=True)
        past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)


generate()  # warm-up
t0 = time.perf_counter()
generate()
gen = B * NEW / (time.perf_counter() - t0)
print(json.dumps({"train_tok_s": train, "lora_tok_s": lora, "gen_tok_s": gen}))
