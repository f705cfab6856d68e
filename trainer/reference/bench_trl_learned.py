"""TRL / PyTorch / scikit-learn side of `cargo bench -p trainer --bench learned`.

The bench writes SmolLM2-135M-Instruct (dequantized to f32, an HF directory with its
tokenizer) and the workload files, then runs one mode of this script per row of its table:

    python bench_trl_learned.py rm MODEL_DIR PAIRS STEPS --batch 4 --threads 2
    python bench_trl_learned.py dpo MODEL_DIR PAIRS STEPS --batch 4 --threads 2
    python bench_trl_learned.py embed MODEL_DIR PAIRS ROWS --batch 8 --threads 2
    python bench_trl_learned.py ridge MATRIX.json --threads 2

- rm: TRL's RewardTrainer, LoRA rank 8 / alpha 16 / no dropout on q_proj and v_proj of a
  one-label sequence classifier (PEFT's SEQ_CLS also trains the `score` head, as trainer
  does), AdamW at 1e-4, constant rate, one optimizer step per batch of pairs.
- dpo: TRL's DPOTrainer, the same LoRA on the causal LM, β 0.1, sigmoid loss, the reference
  being the base with the adapters off (TRL's default with a PEFT model and no ref_model),
  reference log-probs computed in the step (not precomputed), as trainer does.
- embed: the base model's final hidden state (after the last norm) at each row's last
  token, in batches, under torch.no_grad: what `trainer armo embed` computes.
- ridge: scikit-learn's Ridge(fit_intercept=False, solver="auto") on a fixed matrix: each α
  of ArmoRM's grid fitted on the bench's training split and scored on its held-out rows,
  then the best refitted on all rows, which is what `trainer armo fit-probes` does per
  attribute.

Prints one JSON line with per-step (or per-fit) wall times; the first step of a training
mode is a warm-up and reported apart. Nothing is installed here (see
trainer/reference/rl_reference.py for the venv); HF_HUB_OFFLINE is set.
"""

import argparse
import json
import os
import sys
import tempfile
import time


def tokenizer(model_dir):
    from transformers import PreTrainedTokenizerFast

    with open(os.path.join(model_dir, "tokenizer_config.json")) as f:
        special = json.load(f)
    tok = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(model_dir, "tokenizer.json"),
        eos_token=special["eos_token"],
        pad_token=special["eos_token"],
    )
    return tok


def pairs(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def train_mode(args):
    import torch
    import transformers
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, TrainerCallback

    transformers.logging.set_verbosity_error()
    tok = tokenizer(args.model)
    rows = pairs(args.data)
    need = (args.steps + 1) * args.batch
    rows = [rows[i % len(rows)] for i in range(need)]
    out = tempfile.mkdtemp(prefix=f"bench-trl-{args.mode}-")
    common = dict(
        output_dir=out,
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_steps=args.steps + 1,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        fp16=False,
        seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
        max_length=args.max_length,
    )
    steps = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.t0 = time.perf_counter()

        def on_step_end(self, *_, **__):
            steps.append(time.perf_counter() - self.t0)

    if args.mode == "rm":
        from trl import RewardConfig, RewardTrainer

        model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=1, dtype=torch.float32)
        model.config.pad_token_id = tok.pad_token_id
        lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="SEQ_CLS")
        data = Dataset.from_list([{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in rows])
        trainer = RewardTrainer(
            model=model,
            args=RewardConfig(**common),
            train_dataset=data,
            processing_class=tok,
            peft_config=lora,
            callbacks=[Timer()],
        )
    else:
        from trl import DPOConfig, DPOTrainer

        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        data = Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows])
        trainer = DPOTrainer(
            model=model,
            args=DPOConfig(**common, beta=0.1, loss_type="sigmoid", precompute_ref_log_probs=False),
            train_dataset=data,
            processing_class=tok,
            peft_config=lora,
            callbacks=[Timer()],
        )
    trainer.train()
    return {"trl": trl.__version__, "warmup": steps[:1], "steps": steps[1:]}


def embed_mode(args):
    import torch
    from transformers import AutoModelForCausalLM

    tok = tokenizer(args.model)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    rows = pairs(args.data)
    texts = [r["prompt"] + r["chosen"] for r in rows][: args.steps]
    times = []
    with torch.no_grad():
        for i in range(0, len(texts), args.batch):
            enc = tok(texts[i : i + args.batch], return_tensors="pt", padding=True)
            t0 = time.perf_counter()
            h = model.model(**enc).last_hidden_state[:, -1]
            times.append(time.perf_counter() - t0)
            assert h.shape[-1] == model.config.hidden_size
    return {"rows": len(texts), "batch": args.batch, "seconds": sum(times), "batches": times}


def ridge_mode(args):
    import numpy as np
    import sklearn
    from sklearn.linear_model import Ridge

    with open(args.model) as f:
        m = json.load(f)
    x = np.asarray(m["x"], dtype=np.float64)
    y = np.asarray(m["y"], dtype=np.float64)
    tr, va = np.asarray(m["train"]), np.asarray(m["val"])
    # What `fit-probes` does per attribute: each α of the grid fitted on the training split
    # and scored on the held-out one, then the best refitted on every row.
    t0 = time.perf_counter()
    mse = []
    for alpha in m["alphas"]:
        r = Ridge(alpha=alpha, fit_intercept=False).fit(x[tr], y[tr])
        mse.append(float(np.mean((r.predict(x[va]) - y[va]) ** 2)))
    best = m["alphas"][int(np.argmin(mse))]
    Ridge(alpha=best, fit_intercept=False).fit(x, y)
    seconds = time.perf_counter() - t0
    return {"sklearn": sklearn.__version__, "shape": list(x.shape), "alpha": best, "seconds": seconds}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["rm", "dpo", "embed", "ridge"])
    ap.add_argument("model", help="the HF directory (ridge: the matrix file)")
    ap.add_argument("data", nargs="?", help="pairs JSON Lines {prompt, chosen, rejected}")
    ap.add_argument("steps", nargs="?", type=int, default=3, help="steps (embed: rows)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    run = {"rm": train_mode, "dpo": train_mode, "embed": embed_mode, "ridge": ridge_mode}[args.mode]
    out = run(args)
    out.update({"torch": torch.__version__, "threads": torch.get_num_threads()})
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
