"""The main job, ``rldk-track demo``: real TRL GRPO runs on a tiny GPT-2 built in code.

- ``tiny_lm``: the corpus shipped with the package, a BPE tokenizer trained on it and a 2-layer
  GPT-2, saved to a folder that ``from_pretrained`` reads (tests reuse it);
- ``rewards``: the rule-based rewards (one honest, one that pays for length);
- ``grpo``: the two runs (healthy, reward hacking) and their GRPO settings;
- ``job``: trains them with ``RLDKCallback`` into the local trackers and reads back the alerts.
"""
