"""TRL's experimental PPOTrainer on the PPO workload of `cargo bench -p trainer --bench rl`.

The counterpart of bench_trl_grpo.py, with the same inputs (an HF model directory with its
tokenizer, prompts as JSON Lines `{"prompt": text}`), the same CLI shape and the same output
line:

    python bench_trl_ppo.py MODEL_DIR PROMPTS STEPS --prompts-per-step 8 \
        --new-tokens 64 --threads 2

Which TRL: `trl.experimental.ppo` exists up to TRL 1.12.0 and was removed in 1.13.0 (TRL
1.13 - 1.16 ship no PPOTrainer at all), so this needs trl 1.12.0. Without touching the
1.16 environment in /work/venv-ref, it runs on that environment's torch / transformers /
peft with trl 1.12.0 put in front on PYTHONPATH:

    /work/venv-ref/bin/pip install --no-deps --target /work/trl112-overlay "trl==1.12.0"
    PYTHONPATH=/work/trl112-overlay /work/venv-ref/bin/python \
        trainer/reference/bench_trl_ppo.py MODEL_DIR PROMPTS STEPS ...

(tested with trl 1.12.0, transformers 5.25.0, torch 2.15.0, peft 0.21.2; a venv with
`pip install "trl==1.12.0" torch peft` works the same way).

Setup mirrored from bench_trl_grpo.py: LoRA rank 8, alpha 16, no dropout, on q_proj and
v_proj of the policy; AdamW at 1e-4, constant schedule, no weight decay; sampling at
temperature 1 (TRL adds 1e-7) with no top-k / top-p; exactly `new_tokens` tokens per
response (`stop_token` and `stop_token_id` None, so TRL sets the policy's generation
eos_token_id to None and generation never stops early; the wrapper below records the
generated length to show it); the tokenizer built the same way (pad = EOS, left padding);
`torch.set_num_threads(--threads)`; the first `--warmup` steps reported apart. PPO specifics:
one response per prompt (`--num-generations` must be 1), so a step samples
`prompts_per_step` responses; per_device_train_batch_size `--micro-batch` (8) with
gradient_accumulation_steps prompts_per_step / micro_batch (1), so the rollout batch is
prompts_per_step; num_ppo_epochs 1 and num_mini_batches 1 (one optimizer step per rollout);
kl_coef .05 (k1, in the reward); TRL's other PPO defaults (gamma 1, lam .95, cliprange .2,
cliprange_value .2, vf_coef .1, whiten_rewards False, missing_eos_penalty None);
gradient checkpointing left at the TRL default (on), as the GRPO script leaves it.

Models: TRL's PPO takes `nn.Module`s for the reward and the value model (no reward
functions): both are AutoModelForSequenceClassification(num_labels=1) loaded from MODEL_DIR
(the causal-LM weights as backbone and a fresh, seeded random `score` head: torch seed 1
for the value model, 2 for the reward model). Caveats that differ from the GRPO bench:
- The score of a response is the reward model's head on its last non-pad token of
  query + response (`trl.experimental.utils.get_reward`); there is no Python reward
  function, so the rewards are arbitrary but cost a full reward-model forward per step.
- The value model is trained in full (all its parameters are in the optimizer, beside the
  policy's LoRA weights): TRL's PolicyAndValueWrapper puts both under one AdamW.
- There is no separate reference model: with PEFT, TRL computes the reference log-probs
  with the adapter disabled, one extra policy forward per step. Every step also runs a
  value forward during rollout and a policy + value forward / backward in the update.
- pad = EOS (as in the GRPO bench): a response that happens to sample EOS is still 64
  tokens long (same work), but TRL's masks treat what follows the first EOS as padding.
- PPOTrainer.train() fires no on_step_begin, so a step's time is measured from the
  previous on_step_end (the first from on_train_begin) to this on_step_end: rollout,
  scoring, GAE, the update and TRL's logging of the step.

Prints one JSON line: trl / torch versions, threads, completions_per_step, `warmup` and
`steps` (per optimizer step: step_s, its wall time, and generate_s, the time inside the
policy's `generate`), and mean_completion_length (generated tokens per response, per step).
Nothing is installed here.

Checked end to end on a tiny random Llama (trl_tiny.tiny_model_dir(LlamaForCausalLM, ...):
hidden 8, 1 layer, word-level tokenizer w0..w15 + <pad> <eos> <unk>, copied to
/tmp/tiny-llama) and five prompts ("w0 w1", "w3 w4 w5", ...) in /tmp/prompts.jsonl, with
2 steps after 1 warmup step:

    PYTHONPATH=/work/trl112-overlay /work/venv-ref/bin/python \
        trainer/reference/bench_trl_ppo.py /tmp/tiny-llama /tmp/prompts.jsonl 2 \
        --prompts-per-step 8 --new-tokens 64 --threads 2

It ran in about 26 s. Before the JSON line, TRL's PrinterCallback (disable_tqdm) prints
each step's metrics dict (objective/kl, loss/policy_avg, loss/value_avg, val/num_eos_tokens,
...) on stdout, as in the GRPO bench; the JSON line is the last line:

    {"trl": "1.12.0", "torch": "2.15.0+cu132", "threads": 2, "completions_per_step": 8,
     "warmup": [{"step_s": 2.345, "generate_s": 1.383}],
     "steps": [{"step_s": 5.979, "generate_s": 3.431}, {"step_s": 6.303, "generate_s": 2.910}],
     "mean_completion_length": [64.0, 64.0]}

(times on this shared CPU machine; not a measurement.)
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
    ap.add_argument("--num-generations", type=int, default=1)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.num_generations != 1:
        sys.exit("PPO samples one response per prompt: --num-generations must be 1")
    micro = min(args.micro_batch, args.prompts_per_step)
    if args.prompts_per_step % micro:
        sys.exit("--prompts-per-step must be a multiple of --micro-batch")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    import transformers
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        PreTrainedTokenizerFast,
        TrainerCallback,
    )
    from trl.experimental.ppo import PPOConfig, PPOTrainer

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
    policy = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)

    def head_model(seed):
        torch.manual_seed(seed)
        m = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=1, dtype=torch.float32)
        m.config.pad_token_id = tok.pad_token_id
        return m

    value_model = head_model(1)
    reward_model = head_model(2)
    torch.manual_seed(0)

    with open(args.prompts) as f:
        prompts = [json.loads(line)["prompt"] for line in f if line.strip()]
    total = args.steps + args.warmup
    need = total * args.prompts_per_step
    rows = [{"input_ids": tok(prompts[i % len(prompts)], padding=False)["input_ids"]} for i in range(need)]
    dataset = Dataset.from_list(rows)

    completions_per_step = args.prompts_per_step
    out = tempfile.mkdtemp(prefix="bench-trl-ppo-")
    cfg = PPOConfig(
        output_dir=out,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=args.prompts_per_step // micro,
        num_mini_batches=1,
        num_ppo_epochs=1,
        total_episodes=need,
        local_rollout_forward_batch_size=args.prompts_per_step,
        response_length=args.new_tokens,
        stop_token=None,
        stop_token_id=None,
        temperature=1.0,
        missing_eos_penalty=None,
        kl_coef=0.05,
        kl_estimator="k1",
        num_sample_generations=0,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        fp16=False,
        seed=0,
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
    gen_tokens = []
    lengths = []

    class Timer(TrainerCallback):
        def on_train_begin(self, *_, **__):
            gen_time[0] = 0.0
            self.t0 = time.perf_counter()

        def on_step_end(self, *_, **__):
            now = time.perf_counter()
            steps.append({"step_s": now - self.t0, "generate_s": gen_time[0]})
            lengths.append(sum(gen_tokens) / max(1, len(gen_tokens)))
            gen_tokens.clear()
            gen_time[0] = 0.0
            self.t0 = now

    trainer = PPOTrainer(
        args=cfg,
        processing_class=tok,
        model=policy,
        ref_model=None,
        reward_model=reward_model,
        value_model=value_model,
        train_dataset=dataset,
        eval_dataset=dataset.select(range(args.prompts_per_step)),
        peft_config=lora,
        callbacks=[Timer()],
    )
    # Time the sampling: TRL calls `generate` on the (PEFT-wrapped) policy.
    policy_cls = type(trainer.model.policy)
    inner = policy_cls.generate

    def timed_generate(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            result = inner(self, *a, **kw)
        finally:
            gen_time[0] += time.perf_counter() - t0
        prompt_len = kw["input_ids"].shape[1] if "input_ids" in kw else a[0].shape[1]
        seqs = result.sequences if hasattr(result, "sequences") else result
        gen_tokens.extend([seqs.shape[1] - prompt_len] * seqs.shape[0])
        return result

    policy_cls.generate = timed_generate
    trainer.train()
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
