# OpenRLHF's train_sft and train_dpo through the deepspeed launcher, recorded into TensorBoard + MLflow.
source "$(dirname "$0")/env.sh"
COMMON="--ds.zero_stage 2 --ds.param_dtype bf16 --ds.attn_implementation eager --train.max_epochs 1 --data.max_samples 512
 --train.micro_batch_size 8 --train.batch_size 16 --adam.lr 1e-3 --logger.logging_steps 1 --ckpt.save_steps 16 --ckpt.save_hf
 --logger.tensorboard_dir $W/tb_openrlhf"
BENCH_DIR=$W/bench/sft rldk-track openrlhf --backend tensorboard,mlflow --dir $W/runs --run-name sft-tiny -- \
  deepspeed --num_gpus 1 --module openrlhf.cli.train_sft --model.model_name_or_path $M --data.dataset $A/sft.jsonl \
  --data.input_key input --data.output_key output --data.max_len 64 $COMMON --ckpt.path $W/ckpt/sft --ckpt.output_dir $W/out/sft \
  --logger.wandb.run_name sft-tiny
echo "SFT_EXIT=$?"
BENCH_DIR=$W/bench/dpo rldk-track openrlhf --backend tensorboard,mlflow --dir $W/runs --run-name dpo-tiny -- \
  deepspeed --num_gpus 1 --module openrlhf.cli.train_dpo --model.model_name_or_path $M --data.dataset $A/dpo.jsonl \
  --data.prompt_key prompt --data.chosen_key chosen --data.rejected_key rejected --data.input_template $'User: {}\nAssistant: ' \
  --data.max_len 64 $COMMON --ckpt.path $W/ckpt/dpo --ckpt.output_dir $W/out/dpo --logger.wandb.run_name dpo-tiny
echo "DPO_EXIT=$?"
