"""Credentials never reach a tracker, while ordinary tokenizer settings survive."""

from rldk_track.redact import REDACTED, redact


def test_secret_keys_are_redacted_but_tokenizer_tokens_are_not():
    config = {"hub_token": "abc12345", "WANDB_API_KEY": "k" * 40, "db": {"password": "pw"}, "pad_token": "<pad>",
              "eos_token": "</s>", "max_new_tokens": 128, "tokenizer": "gpt2", "token": None}
    assert redact(config) == {"hub_token": REDACTED, "WANDB_API_KEY": REDACTED, "db": {"password": REDACTED},
                              "pad_token": "<pad>", "eos_token": "</s>", "max_new_tokens": 128, "tokenizer": "gpt2",
                              "token": None}


def test_secret_looking_values_are_redacted_whatever_their_key():
    values = ["hf_" + "a" * 30, "sk-proj-" + "b" * 30, "ghp_" + "c" * 36, "AKIA" + "D" * 16]
    assert redact({"notes": values}) == {"notes": [REDACTED] * 4}


def test_passwords_inside_urls_are_masked_and_the_rest_kept():
    assert redact({"uri": "https://alice:s3cr3t@mlflow.example:5000/x"}) == {"uri": f"https://alice:{REDACTED}@mlflow.example:5000/x"}
    assert redact("postgresql://mlflow:pw@db:5432/mlflow") == f"postgresql://mlflow:{REDACTED}@db:5432/mlflow"
    assert redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_bare_key_holding_a_credential_is_redacted():
    config = {"logger": {"wandb": {"key": "0123456789abcdef0123456789abcdef01234567", "project": "ppo"}}, "key": "reward/mean"}
    assert redact(config) == {"logger": {"wandb": {"key": REDACTED, "project": "ppo"}}, "key": "reward/mean"}


def test_a_credential_inside_a_longer_string_is_cut_out_and_the_rest_kept():
    assert redact({"prompt": "use sk-ant-api03-" + "x" * 30 + " here"}) == {"prompt": f"use {REDACTED} here"}
    assert redact("Authorization: Bearer abcdef123456") == f"Authorization: Bearer {REDACTED}"
    assert redact("AccountName=a;AccountKey=c2VjcmV0c2VjcmV0;Suffix=x") == f"AccountName=a;AccountKey={REDACTED};Suffix=x"
    assert redact("https://a.blob.core.windows.net/c?sv=1&sig=abcdef%3D&se=2") == f"https://a.blob.core.windows.net/c?sv=1&sig={REDACTED}&se=2"


def test_secret_flags_on_a_command_line_are_redacted_but_ordinary_flags_kept():
    argv = ["train.py", "--hf_token", "abc123secret", "--api-key=zzz999secret", "--max_new_tokens", "128", "--lr=1e-5"]
    assert redact(argv) == ["train.py", "--hf_token", REDACTED, f"--api-key={REDACTED}", "--max_new_tokens", "128", "--lr=1e-5"]
    assert redact("python train.py --password=hunter22 --pad_token=<pad>") == f"python train.py --password={REDACTED} --pad_token=<pad>"


def test_token_shapes_are_found_anywhere():
    shapes = ["ghp_" + "a" * 36, "github_pat_" + "b" * 30, "AKIA" + "C" * 16, "AIza" + "d" * 35, "xoxb-1234567890-abc",
              "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlc2ln", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"]
    assert [redact(f"[{s}]") for s in shapes] == [f"[{REDACTED}]"] * len(shapes)
