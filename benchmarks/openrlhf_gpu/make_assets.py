"""Tiny causal LM (Llama config, built in code, no hub), its tokenizer (BPE trained here), and
local JSONL data for OpenRLHF's SFT, DPO and PPO command lines."""
import json
import random
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
rng = random.Random(0)
WORDS = "alpha beta gamma delta apple river stone cloud green blue red fast slow happy quiet bright".split()


def question(i):
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    return f"what is {a} plus {b} ?", str(a + b)


rows = [question(i) for i in range(512)]
sft = [{"input": q, "output": f"the answer is {a} ."} for q, a in rows]
dpo = [{"prompt": q, "chosen": f"the answer is {a} .", "rejected": " ".join(rng.choices(WORDS, k=5))} for q, a in rows]
ppo = [{"input": q, "label": a} for q, a in rows]
for name, data in (("sft", sft), ("dpo", dpo), ("ppo", ppo)):
    with open(out / f"{name}.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in data)

corpus = [f"User: {r['input']}\nAssistant: {r['output']}" for r in sft] + [r["rejected"] for r in dpo]
tok = Tokenizer(models.BPE(unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=320, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
model_dir = out / "tiny-llama"
fast.save_pretrained(model_dir)
config = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                     bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                     tie_word_embeddings=False)
LlamaForCausalLM(config).save_pretrained(model_dir)
print("assets in", out, "vocab", len(fast))
