"""TRL's GRPOTrainer on the workload of `cargo bench -p trainer --bench rl`.

The bench writes the model (SmolLM2-135M-Instruct dequantized to f32, as an HF directory
with its tokenizer) and the prompts (JSON Lines, `{"prompt": text}`), then runs this script
with the same shape it gives `trainer rl`:

    python bench_trl_grpo.py MODEL_DIR PROMPTS STEPS --prompts-per-step 8 \
        --num-generations 4 --new-tokens 64 --threads 2

Setup mirrored on both sides: LoRA rank 8, alpha 16, no dropout, on q_proj and v_proj;
beta 0 (no reference model), one policy update per batch, AdamW at 1e-4; micro-batches of
8 completions (TRL: per_device_train_batch_size 8, gradient_accumulation_steps 4, so one
optimizer step per sampling round of prompts_per_step x num_generations completions);
sampling at temperature 1 with no top-k / top-p, and exactly `new_tokens` tokens per
completion (`min_new_tokens` holds EOS back on both sides, so each step does equal work);
the reward is the negated word count, here as a Python function, there as the sandboxed
`builtin:length` module.

Prints one JSON line: per optimizer step, its wall time and the time spent inside
`generate`; the first `--warmup` steps are reported apart. Needs trl, peft and torch (see
trainer/reference/rl_reference.py for the install); nothing is installed here.
"""

import argparse
import json
import os
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("prompts")
    ap.add_argument("steps", type=int)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--prompts-per-step", type=int, default=8)
    ap.add_argument("--num-generations", type=int, default=4)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()

    with open(os.path.join(args.model, "tokenizer_config.json")) as f:
        special = json.load(f)
    tok = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(args.model, "tokenizer.json"),
        eos_token=special["eos_token"],
        pad_token=special["eos_token"],
    )
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)

    with open(args.prompts) as f:
        prompts = [json.loads(line)["prompt"] for line in f if line.strip()]
    total = args.steps + args.warmup
    need = total * args.prompts_per_step
    rows = [{"prompt": prompts[i % len(prompts)]} for i in range(need)]

    def words(completions, **_):
        return [-float(len(c.split())) for c in completions]

    completions_per_step = args.prompts_per_step * args.num_generations
    out = tempfile.mkdtemp(prefix="bench-trl-grpo-")
    cfg = GRPOConfig(
        output_dir=out,
        per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=completions_per_step // args.micro_batch,
        num_generations=args.num_generations,
        max_completion_length=args.new_tokens,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        generation_kwargs={"min_new_tokens": args.new_tokens},
        beta=0.0,
        num_iterations=1,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_steps=total,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        fp16=False,
        seed=0,
        shuffle_dataset=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    lora = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=["q_proj", "v_proj"],
        task_type="CAUSAL_LM",
    )

    steps = []
    gen_time = [0.0]

    class Timer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            gen_time[0] = 0.0
            self.t0 = time.perf_counter()

        def on_step_end(self, *_, **__):
            steps.append({"step_s": time.perf_counter() - self.t0, "generate_s": gen_time[0]})

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[words],
        args=cfg,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=lora,
        callbacks=[Timer()],
    )
    # Time the sampling: TRL calls `generate` on the (PEFT-wrapped) policy.
    policy_cls = type(trainer.model)
    inner = policy_cls.generate

    def timed_generate(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            return inner(self, *a, **kw)
        finally:
            gen_time[0] += time.perf_counter() - t0

    policy_cls.generate = timed_generate
    trainer.train()
    lengths = [
        h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h
    ]
    print(
        json.dumps(
            {
                "trl": trl.__version__,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "completions_per_step": completions_per_step,
                "warmup": steps[: args.warmup],
                "steps": steps[args.warmup :],
                "mean_completion_length": lengths[args.warmup :],
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
