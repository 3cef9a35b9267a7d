# OpenRLHF's train_ppo_ray (Ray, every model colocated on one GPU, rule-based reward from reward.py,
# generation by the HF stand-in for vLLM), recorded by rldk-track; then the same job without it.
source "$(dirname "$0")/env.sh"
PPO="--ref.num_nodes 1 --ref.num_gpus_per_node 1 --actor.num_nodes 1 --actor.num_gpus_per_node 1 --train.colocate_all
 --vllm.num_engines 1 --vllm.tensor_parallel_size 1 --vllm.gpu_memory_utilization 0.1
 --actor.model_name_or_path $M --reward.remote_url $HERE/reward.py
 --data.prompt_dataset $A/ppo.jsonl --data.input_key input --data.label_key label
 --data.max_samples 192 --rollout.batch_size 8 --rollout.n_samples_per_prompt 2 --train.batch_size 16
 --rollout.micro_batch_size 8 --train.micro_batch_size 8 --rollout.max_new_tokens 12 --data.max_len 64
 --train.max_epochs 1 --train.num_episodes 1 --algo.advantage.estimator group_norm --algo.kl.init_coef 0.01
 --actor.adam.lr 1e-4 --ds.zero_stage 2 --ds.param_dtype bf16 --ds.attn_implementation eager
 --logger.logging_steps 1 --logger.tensorboard_dir $W/tb_openrlhf --ckpt.save_steps 8 --ckpt.save_hf"
BENCH_DIR=$W/bench/ppo rldk-track openrlhf --backend tensorboard,mlflow --dir $W/runs --run-name ppo-tiny -- \
  python3 -m openrlhf.cli.train_ppo_ray $PPO --data.input_template $'User: {}\nAssistant: ' \
  --ckpt.path $W/ckpt/ppo --ckpt.output_dir $W/out/ppo --logger.wandb.run_name ppo-tiny
echo "PPO_EXIT=$?"
BENCH_DIR=$W/bench/ppo_bare python3 -m openrlhf.cli.train_ppo_ray $PPO --data.input_template $'User: {}\nAssistant: ' \
  --ckpt.path $W/ckpt/ppo_bare --ckpt.output_dir $W/out/ppo_bare --logger.wandb.run_name ppo-bare
echo "BARE_EXIT=$?"
