"""Rule-based reward for OpenRLHF's --reward.remote_url FILE.py: 1 when the response holds the
right sum, else 0.1 per digit token (so the reward has a slope to climb)."""
import re


def reward_func(queries, prompts, labels):
    query, prompt, label = queries[0], prompts[0], labels[0]
    response = query[len(prompt):] if query.startswith(prompt) else query
    numbers = re.findall(r"\d+", response)
    score = 1.0 if label in numbers else min(0.5, 0.1 * len(numbers))
    return {"rewards": score, "scores": score, "extra_logs": {"exact": float(label in numbers)}}
