"""PyTorch references for trainer's numerics: logits, masked loss, gradients, one AdamW step.

Creates tiny Llama, Qwen2 and GPT-2 models with Hugging Face transformers from a fixed seed
(HF init, then every parameter, norms and biases included, perturbed so none is trivially
0 or 1), saves each with `save_pretrained` (config.json + model.safetensors) under
trainer/reference/data/<family>/, and next to it `expected.safetensors` with:

  ids, attention_mask, loss_mask   the batch (row 1 right-padded)
  logits                           (b, t, vocab) from the model in float32
  loss                             completion-only mean next-token NLL, shape (1,)
  grad.<name>                      d loss / d parameter
  after.<name>                     the parameter after one torch.optim.AdamW step

trainer/tests/reference.rs loads the same directory with trainer's HF loader and asserts
agreement. Regenerate with:

    python3 -m pip install torch transformers safetensors
    python3 trainer/reference/tiny_models.py
"""

import os

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
LR, BETAS, EPS, WD = 1e-2, (0.9, 0.95), 1e-8, 0.1

IDS = torch.tensor([[5, 17, 33, 2, 60, 41, 8, 19], [11, 3, 47, 29, 50, 0, 0, 0]])
ATTN = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0]])
# Loss on "completion" positions only (the targets of positions 3.. in row 0, 2..4 in row 1).
LOSS_MASK = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0, 0, 0]])


def models():
    common = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                  max_position_embeddings=64)
    yield "llama", LlamaForCausalLM(LlamaConfig(**common, rope_theta=10000.0, tie_word_embeddings=False))
    yield "qwen2", Qwen2ForCausalLM(Qwen2Config(**common, rope_theta=1000000.0, tie_word_embeddings=True))
    yield "gpt2", GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=2, n_head=4,
                                             activation_function="gelu_new", layer_norm_epsilon=1e-5))


def masked_loss(logits):
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(2, IDS[:, 1:].unsqueeze(2)).squeeze(2)
    w = LOSS_MASK[:, 1:].float()
    return -(picked * w).sum() / w.sum()


def main():
    for family, model in models():
        torch.manual_seed(1234)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        model = model.float().train()  # no dropout: configs default to 0 for these families except gpt2
        if family == "gpt2":
            model.config.resid_pdrop = model.config.embd_pdrop = model.config.attn_pdrop = 0.0
            model.eval()
        out_dir = os.path.join(HERE, "data", family)
        model.save_pretrained(out_dir, safe_serialization=True)
        logits = model(input_ids=IDS, attention_mask=ATTN).logits
        loss = masked_loss(logits)
        loss.backward()
        expected = {
            "ids": IDS.to(torch.int64).contiguous(),
            "attention_mask": ATTN.to(torch.int64).contiguous(),
            "loss_mask": LOSS_MASK.to(torch.int64).contiguous(),
            "logits": logits.detach().contiguous(),
            "loss": loss.detach().reshape(1),
        }
        named = dict(model.named_parameters())
        for name, p in named.items():
            expected["grad." + name] = p.grad.detach().clone().contiguous()
        opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
        opt.step()
        for name, p in named.items():
            expected["after." + name] = p.detach().clone().contiguous()
        save_file(expected, os.path.join(out_dir, "expected.safetensors"))
        print(family, "loss", float(loss), "params", len(named))


if __name__ == "__main__":
    main()
