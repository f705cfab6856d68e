"""What the TRL reference scripts share: a tiny random Llama and a word-level tokenizer,
saved to a temporary directory so TRL's trainers can load them by path.

The numbers the scripts pin never come from this model (each replaces the forward pass
with fixed log-probs or scores); the trainers just need a real one to be constructed.
"""

import tempfile

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import LlamaConfig, PreTrainedTokenizerFast

VOCAB = 16  # word ids w0..w15; then pad, eos, unk
PAD, EOS = VOCAB, VOCAB + 1


def tiny_model_dir(model_cls, prefix, **config):
    """Saves a seeded tiny `model_cls` (LlamaForCausalLM, LlamaForSequenceClassification)
    and its tokenizer; returns (directory, tokenizer)."""
    vocab = {f"w{i}": i for i in range(VOCAB)}
    vocab.update({"<pad>": PAD, "<eos>": EOS, "<unk>": EOS + 1})
    tk = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    model = model_cls(
        LlamaConfig(vocab_size=len(vocab), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                    num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                    pad_token_id=PAD, eos_token_id=EOS, **config)
    )
    d = tempfile.mkdtemp(prefix=prefix)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d, tok
