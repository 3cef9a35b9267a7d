"""Planted credentials never reach a store: a script run with secrets on its command line logs
them inside config strings and lists, tags, a summary, an alert message and an artifact name,
to MLflow (a server whose tracking URI carries a password), TensorBoard and W&B offline; no
byte of any secret is in any file they wrote, nor on the script's stdout/stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("wandb")
pytest.importorskip("tensorboard")

SECRETS = {
    "openai": "sk-proj-" + "Aa1" * 12,
    "anthropic": "sk-ant-api03-" + "Bb2" * 12,
    "hf": "hf_" + "Cc3" * 11,
    "hf_flag": "hf_" + "Dd4" * 11,
    "github": "ghp_" + "Ee5" * 12,
    "github_pat": "github_pat_" + "Ff6" * 12,
    "aws": "AKIA" + "GH7IJ8KL9MN0PQ1R",
    "google": "AIza" + "Sy" + "Tt8" * 11,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyb290In0.c2lnbmF0dXJlc2lnbmF0dXJl",
    "pem": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
    "azure": "Uu9" * 10 + "==",
    "sas": "Vv0sigsigsigsigsig%3D",
    "bearer": "Ww1bearerbearerbearer",
    "url_password": "Xx2passw0rdpassw0rd",
    "slack": "xoxb-" + "123456789012-" + "Yy3" * 6,
    "argv_hf": "hf_" + "Zz4" * 11,
    "argv_key": "sk-" + "Ab5" * 12,
    "tracking_password": "Cd6trackingpassword",
}

SCRIPT = """
import json, sys
import rldk_track
s = json.loads(open(sys.argv[1]).read())  # not on the command line: argv has its own two
run = rldk_track.init(backend=["mlflow", "tensorboard", "wandb"], dir=sys.argv[2], project="secrets",
                      mlflow={"tracking_uri": sys.argv[3]})
run.log_params({
    "prompt": f"call the API with {s['openai']} then {s['anthropic']} please",
    "launcher": ["python", "train.py", f"--hf_token={s['hf_flag']}", "--lr", "1e-5"],
    "headers": f"Authorization: Bearer {s['bearer']}",
    "storage": f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={s['azure']};EndpointSuffix=core",
    "blob": f"https://acct.blob.core.windows.net/c/f?sv=2022&sig={s['sas']}&se=2030",
    "db": f"postgresql://mlflow:{s['url_password']}@db:5432/mlflow",
    "key_file": f"-----BEGIN PRIVATE KEY-----\\n{s['pem']}\\n-----END PRIVATE KEY-----",
    "nested": {"notes": [f"token {s['github']}", f"pat={s['github_pat']}"]},
})
run.set_tags({"aws": f"id {s['aws']} here", "google": f"key={s['google']}", "session": s["jwt"], "hub": s["hf"]})
run.log_summary({"slack": f"posted with {s['slack']}"})
run.alert("leak", f"request failed with header Bearer {s['bearer']} and key {s['openai']}", severity="warning")
run.log_artifact(b"x", name=f"notes/{s['hf']}.txt")
run.log({"reward": 1.0}, step=0)
print(run.finish(timeout=120).describe())
"""


def test_no_planted_secret_reaches_any_store_or_the_console(mlflow_server, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    uri = mlflow_server.uri.replace("http://", f"http://rldk:{SECRETS['tracking_password']}@")
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps(SECRETS))
    out = subprocess.run(
        [sys.executable, str(script), str(secrets_file), str(tmp_path / "run"), uri,
         "--hf_token", SECRETS["argv_hf"], f"--api-key={SECRETS['argv_key']}"],
        timeout=300, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert "all records delivered" in out.stdout, out.stdout + out.stderr
    leaks = {name for name, secret in SECRETS.items() if secret in out.stdout or secret in out.stderr}
    for folder in (tmp_path, mlflow_server.dir):
        for path in folder.rglob("*"):
            if path.is_file() and path != secrets_file and path != script:
                data = path.read_bytes()
                leaks |= {f"{name} in {path.name}" for name, secret in SECRETS.items() if secret.encode() in data}
    assert not leaks
