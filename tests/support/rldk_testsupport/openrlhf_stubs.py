"""Stand-ins for OpenRLHF's two CUDA-only imports (``flash_attn`` and ``vllm``), so the real
OpenRLHF trainer modules import on a CPU machine.

They are placed in ``sys.modules`` only while OpenRLHF is being imported (:func:`cuda_only_stand_ins`)
and removed afterwards, so nothing else in the test process (transformers' "is flash_attn
available?" checks, for one) ever sees them. None of OpenRLHF's own code is replaced: the trainer
methods that run in the tests are the installed wheel's. The stand-ins only hold the names
OpenRLHF binds at import time; calling one raises, because no test should reach GPU code.

``openrlhf_trainers`` skips the test when OpenRLHF is not installed (``pip install --no-deps
openrlhf==0.11.2``, see ``docs/openrlhf.md``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from typing import Iterator

import pytest

#: module name -> names OpenRLHF 0.11.2 imports from it at module level.
_NAMES: dict[str, tuple[str, ...]] = {
    "flash_attn": (),
    "flash_attn.bert_padding": ("index_first_axis", "pad_input", "rearrange", "unpad_input"),
    "flash_attn.utils": (),
    "flash_attn.utils.distributed": ("all_gather",),
    "vllm": ("SamplingParams",),
    "vllm.inputs": ("TokensPrompt",),
    "vllm.utils": ("random_uuid",),
}

#: Imported before the stand-ins go in: they probe for flash_attn themselves and must see the truth.
_PROBING_DEPENDENCIES = ("transformers.modeling_utils", "peft", "deepspeed")

#: OpenRLHF modules whose import needs the stand-ins (and that the tests use).
TRAINER_MODULES = (
    "openrlhf.trainer.ppo_trainer",
    "openrlhf.trainer.ppo_trainer_async",
    "openrlhf.trainer.sft_trainer",
    "openrlhf.trainer.dpo_trainer",
    "openrlhf.trainer.rm_trainer",
)


def _not_on_cpu(name: str):
    def unavailable(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{name} is a CPU-test stand-in; GPU code is not expected to run in tests")

    unavailable.__name__ = name.rsplit(".", 1)[-1]
    return unavailable


def _stand_in_modules() -> dict[str, types.ModuleType]:
    modules = {}
    for module_name, names in _NAMES.items():
        module = types.ModuleType(module_name)
        module.__file__ = f"<rldk test stand-in for {module_name}>"
        if module_name in ("flash_attn", "vllm"):
            module.__version__ = "0.0.0+cpu-stand-in"
        for name in names:
            setattr(module, name, _not_on_cpu(f"{module_name}.{name}"))
        modules[module_name] = module
    for module_name, module in modules.items():
        parent, _, child = module_name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
    return modules


@contextlib.contextmanager
def cuda_only_stand_ins() -> Iterator[None]:
    """Put the stand-ins in ``sys.modules`` for the duration of the block (unless the real
    packages are installed), then take them out again."""
    if importlib.util.find_spec("flash_attn") is not None and importlib.util.find_spec("vllm") is not None:
        yield
        return
    for name in _PROBING_DEPENDENCIES:
        importlib.import_module(name)
    added = {name: module for name, module in _stand_in_modules().items() if name not in sys.modules}
    sys.modules.update(added)
    try:
        yield
    finally:
        for name, module in added.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def import_openrlhf_trainers() -> dict[str, types.ModuleType]:
    """Import OpenRLHF's trainer modules with the stand-ins in place."""
    with cuda_only_stand_ins():
        return {name: importlib.import_module(name) for name in TRAINER_MODULES}


@pytest.fixture(scope="session")
def openrlhf_installed() -> None:
    """Skips the test when openrlhf is not installed (without importing it)."""
    if importlib.util.find_spec("openrlhf") is None:
        pytest.skip("openrlhf is not installed (pip install --no-deps openrlhf==0.11.2; see docs/openrlhf.md)")


@pytest.fixture(scope="session")
def openrlhf_trainers(openrlhf_installed: None) -> dict[str, types.ModuleType]:
    """OpenRLHF's real trainer modules by name, imported in this process; skips when openrlhf is
    not installed."""
    return import_openrlhf_trainers()
