"""Stand-in for vLLM on the lent GPU: vLLM 0.29 (several hundred MB, built against its own torch)
cannot be carried there, and OpenRLHF 0.11.2's PPO has no other generation path. This module gives
OpenRLHF's own RolloutRayActor the engine interface it calls (AsyncLLMEngine.from_engine_args,
generate, collective_rpc for weight sync, sleep/wake_up), backed by transformers' generate on the
same GPU. Weights are synced from the actor through the CUDA IPC handles OpenRLHF sends
(--train.colocate_all), so the rollouts come from the policy being trained."""
import asyncio
import threading

__version__ = "0.29.0+hf-stand-in"


class SamplingParams:
    def __init__(self, temperature=1.0, top_p=1.0, top_k=-1, max_tokens=None, min_tokens=0,
                 skip_special_tokens=False, logprobs=None, **kwargs):
        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k
        self.max_tokens, self.min_tokens = max_tokens, min_tokens
        self.skip_special_tokens, self.logprobs = skip_special_tokens, logprobs


class AsyncEngineArgs:
    def __init__(self, *args, **kwargs):
        self.kwargs = kwargs


class _Completion:
    def __init__(self, token_ids, finish_reason):
        self.token_ids, self.finish_reason, self.logprobs = token_ids, finish_reason, None


class _RequestOutput:
    def __init__(self, completion):
        self.outputs = [completion]


class _OutputProcessor:
    def get_num_unfinished_requests(self):
        return 0


class AsyncLLMEngine:
    def __init__(self, kwargs):
        import torch
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(kwargs["model"], dtype=torch.bfloat16).cuda().eval()
        self.params = dict(self.model.named_parameters())
        self.lock = threading.Lock()
        self.output_processor = _OutputProcessor()
        self.weight_updates = 0

    @classmethod
    def from_engine_args(cls, engine_args):
        return cls(engine_args.kwargs)

    async def is_sleeping(self):
        return False

    async def sleep(self, level=1):
        return None

    async def wake_up(self, tags=None):
        return None

    async def reset_prefix_cache(self):
        return None

    async def pause_generation(self, mode="keep"):
        return None

    async def resume_generation(self):
        return None

    async def collective_rpc(self, method, args=()):
        if method != "update_weight_cuda_ipc":
            raise NotImplementedError(f"vLLM stand-in: {method} (use --train.colocate_all: CUDA IPC weight sync)")
        name, dtype, shape, ipc_handles, _empty_cache = args
        import torch
        from openrlhf.trainer.ray.utils import get_physical_gpu_id

        func, rebuild_args = ipc_handles[get_physical_gpu_id()]
        rebuild_args = list(rebuild_args)
        rebuild_args[6] = torch.cuda.current_device()
        weight = func(*rebuild_args)
        with self.lock, torch.no_grad():
            self.params[name].copy_(weight)
        torch.cuda.synchronize()
        self.weight_updates += 1
        return [None]

    def _generate(self, prompt_token_ids, sp):
        import torch

        ids = torch.tensor([prompt_token_ids], device="cuda")
        max_new = int(sp.max_tokens or 16)
        with self.lock, torch.no_grad():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                      temperature=max(float(sp.temperature), 1e-3), top_p=float(sp.top_p),
                                      max_new_tokens=max_new, min_new_tokens=int(sp.min_tokens or 0),
                                      pad_token_id=self.model.config.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        eos = self.model.config.eos_token_id
        if eos in new:
            new = new[: new.index(eos) + 1]
            return _Completion(new, "stop")
        return _Completion(new, "length")

    async def generate(self, prompt, sampling_params, request_id=None):
        completion = await asyncio.to_thread(self._generate, prompt["prompt_token_ids"], sampling_params)
        yield _RequestOutput(completion)
