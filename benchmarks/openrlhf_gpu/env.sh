# Sourced by sft_dpo.sh and ppo.sh. Assumes: torch with CUDA, transformers, tensorboard; and
# (pip install --no-deps) openrlhf==0.11.2, deepspeed==0.19.6 (DS_BUILD_OPS=0 pip wheel), ray==2.55.0,
# datasets, hjson, pydantic, jsonschema, mlflow-skinny + sqlalchemy/alembic (see docs/openrlhf.md).
# rldk_track on PYTHONPATH (REPO), and the stand-ins for flash_attn and vLLM (shim/, see its docstrings).
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd); REPO=$(cd "$HERE/../.." && pwd)
W=${W:-/tmp/openrlhf_gpu}; A=$W/assets; M=$A/tiny-llama; mkdir -p $W
export PYTHONPATH=$HERE/bench:$REPO:$HERE/shim${PYTHONPATH:+:$PYTHONPATH}
# TORCH_CUDA_ARCH_LIST: DeepSpeed 0.19.6 cannot parse the H200's "9.0a" when it JIT-builds FusedAdam
export TORCH_CUDA_ARCH_LIST=9.0 HF_HUB_OFFLINE=1 WANDB_MODE=offline PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
[ -d $M ] || python3 $HERE/make_assets.py $A
