"""Find a checkpoint's weight files and read its tensors piece by piece, as float32.

Checkpoint health must work on a 7B model without loading it: memory stays bounded by one
*chunk* of elements (not one tensor, not the file). Formats:

- **safetensors** (``model.safetensors``, sharded ``model-0000x-of-0000y.safetensors`` with
  ``model.safetensors.index.json``, PEFT's ``adapter_model.safetensors``): the header is parsed
  here and each chunk is read with ``readinto`` into a reused buffer. We do not use
  ``safetensors.safe_open``: its numpy view cannot hold bfloat16, and its memory map leaves every
  page it touched in the process's resident set until the file is closed.
- **torch pickles** (``pytorch_model*.bin``, ``adapter_model.bin``, DeepSpeed's
  ``mp_rank_00_model_states.pt``, any ``.pt``/``.pth``): ``torch.load(mmap=True,
  weights_only=True)``; each chunk's pages are handed back to the kernel once it is read
  (Linux). A legacy (non-zip) file cannot be mapped and is loaded whole (noted in the report).
  Nothing is ever unpickled with ``weights_only=False``.

Directory layouts found: TRL/transformers ``output_dir/checkpoint-<step>/`` (optimizer, scheduler
and RNG files are ignored), OpenRLHF's ``<ckpt_path>/global_step<N>_hf/`` (HF format) and
``<ckpt_path>/_actor/global_step<N>/`` (DeepSpeed), and DeepSpeed inside a TRL checkpoint
(``checkpoint-<step>/global_step<step>/``) when no HF weights were written next to it.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

#: Elements per chunk: 1Mi float32 = 4 MiB per buffer, about 10 MiB in all (16 MiB with a
#: reference). Larger chunks fall out of the CPU caches and were slower in
#: ``benchmarks/checkpoint_health.py``.
DEFAULT_CHUNK_ELEMENTS = 1 << 20

SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_INDEX = "pytorch_model.bin.index.json"
_TORCH_WEIGHTS = re.compile(r"^(pytorch_model.*\.bin|adapter_model\.bin|mp_rank_\d+_model_states\.pt)$")
_TORCH_SUFFIXES = (".bin", ".pt", ".pth")
#: Files a trainer writes next to the weights that are not weights.
_NOT_WEIGHTS = re.compile(
    r"^(optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state.*\.pth|training_args\.bin|.*optim_states\.pt)$"
)
#: safetensors dtype name -> numpy dtype of the stored bytes (torch dtypes map to these names).
_SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # converted by shifting into the high half of a float32
}
FLOAT_DTYPES = frozenset(_SAFETENSORS_DTYPES)


class CheckpointFormatError(ValueError):
    """The path holds no weights we can read (the message says what was looked for)."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a checkpoint: where it is and what it is (dtype in safetensors' names)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    @property
    def nbytes(self) -> int:
        """The bytes a floating-point tensor takes in the file."""
        return self.numel * _SAFETENSORS_DTYPES[self.dtype].itemsize


@dataclass(frozen=True)
class WeightFiles:
    """The weight files of one checkpoint; ``origin`` is what the user pointed at."""

    origin: Path
    files: tuple[Path, ...]
    format: str  # "safetensors" | "torch"
    extra: tuple[Path, ...] = ()  # index files that travel with the weights


def find_weight_files(path: str | os.PathLike[str]) -> WeightFiles:
    """The weight files of a checkpoint file or directory (see the module docstring)."""
    origin = Path(path)
    if origin.is_file():
        fmt = "safetensors" if origin.suffix == ".safetensors" else "torch"
        return WeightFiles(origin, (origin,), fmt)
    if not origin.is_dir():
        raise CheckpointFormatError(f"checkpoint {origin} does not exist")
    names = sorted(p.name for p in origin.iterdir() if p.is_file())
    for index_name, fmt in ((SAFETENSORS_INDEX, "safetensors"), (TORCH_INDEX, "torch")):
        if index_name in names:
            index = json.loads((origin / index_name).read_text())
            shards = sorted(set(index.get("weight_map", {}).values()))
            missing = [s for s in shards if s not in names]
            if missing:
                raise CheckpointFormatError(f"{origin / index_name} lists missing shards: {', '.join(missing)}")
            return WeightFiles(origin, tuple(origin / s for s in shards), fmt, (origin / index_name,))
    safetensors = [origin / n for n in names if n.endswith(".safetensors")]
    if safetensors:
        return WeightFiles(origin, tuple(safetensors), "safetensors")
    torch_files = [origin / n for n in names if _TORCH_WEIGHTS.match(n)]
    if not torch_files:
        torch_files = [origin / n for n in names if n.endswith(_TORCH_SUFFIXES) and not _NOT_WEIGHTS.match(n)]
    if torch_files:
        return WeightFiles(origin, tuple(torch_files), "torch")
    deepspeed = _latest_deepspeed_tag(origin)
    if deepspeed is not None:
        return replace(find_weight_files(deepspeed), origin=origin)
    raise CheckpointFormatError(
        f"no weights in {origin}: looked for *.safetensors ({SAFETENSORS_INDEX}), pytorch_model*.bin "
        f"({TORCH_INDEX}), adapter_model.*, other .pt/.pth files and DeepSpeed global_step*/ folders"
    )


def _latest_deepspeed_tag(folder: Path) -> Path | None:
    tags = [p for p in folder.glob("global_step*") if p.is_dir() and p.name[len("global_step"):].isdigit()]
    return max(tags, key=lambda p: int(p.name[len("global_step"):])) if tags else None


class CheckpointReader:
    """Random access to a checkpoint's tensors by element range, converted to float32.

    ``read(name, start, stop, out)`` fills ``out[: stop - start]`` and returns that view; call
    ``done(name)`` when a tensor is finished (drops its mapped pages). Use as a context manager.
    """

    def __init__(self, weights: WeightFiles, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> None:
        self.weights = weights
        self.notes: list[str] = []
        self.tensors: dict[str, TensorInfo] = {}
        self._raw = np.empty(chunk_elements, dtype=np.float64)  # bytes for one chunk of any dtype
        self._sources: dict[Path, _Source] = {}
        try:
            for file in weights.files:
                source = _SafetensorsFile(file) if weights.format == "safetensors" else _TorchFile(file, self.notes)
                self._sources[file] = source
                for info in source.infos():
                    name = info.name
                    if name in self.tensors:  # independent files (model + adapter) may reuse names
                        name = f"{file.name}:{name}"
                        info = TensorInfo(name, info.dtype, info.shape, info.file)
                        source.alias(name, info)
                    self.tensors[name] = info
        except BaseException:
            self.close()
            raise

    def read(self, name: str, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        info = self.tensors[name]
        return self._sources[info.file].read(info, start, stop, out, self._raw)

    def done(self, name: str) -> None:
        info = self.tensors[name]
        self._sources[info.file].done(info)

    def close(self) -> None:
        for source in self._sources.values():
            source.close()
        self._sources.clear()

    def __enter__(self) -> "CheckpointReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Source:
    def infos(self) -> Iterator[TensorInfo]:
        raise NotImplementedError

    def alias(self, name: str, info: TensorInfo) -> None:
        raise NotImplementedError

    def read(self, info: TensorInfo, start: int, stop: int, out: np.ndarray, raw: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def done(self, info: TensorInfo) -> None:
        pass

    def close(self) -> None:
        pass


class _SafetensorsFile(_Source):
    """A safetensors file: 8-byte little-endian header size, JSON header, then the data."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "rb", buffering=0)
        size = os.fstat(self._file.fileno()).st_size
        head = self._file.read(8)
        if len(head) != 8:
            raise CheckpointFormatError(f"{path} is not a safetensors file (too short)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(size - 8, 100 * 2**20):
            raise CheckpointFormatError(f"{path} is not a safetensors file (header size {header_len})")
        try:
            header = json.loads(self._file.read(header_len))
        except ValueError as exc:
            raise CheckpointFormatError(f"{path} has a corrupt safetensors header: {exc}") from exc
        self._data_start = 8 + header_len
        self._entries: dict[str, tuple[int, int]] = {}
        self._infos: list[TensorInfo] = []
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            begin, end = entry["data_offsets"]
            if self._data_start + end > size:
                raise CheckpointFormatError(f"{path}: tensor {name!r} runs past the end of the file (truncated?)")
            self._entries[name] = (begin, end)
            self._infos.append(TensorInfo(name, entry["dtype"], tuple(entry["shape"]), path))
        self._infos.sort(key=lambda info: self._entries[info.name][0])  # read the file front to back

    def infos(self) -> Iterator[TensorInfo]:
        return iter(self._infos)

    def alias(self, name: str, info: TensorInfo) -> None:
        original = name.split(":", 1)[1]
        self._entries[name] = self._entries[original]

    def read(self, info: TensorInfo, start: int, stop: int, out: np.ndarray, raw: np.ndarray) -> np.ndarray:
        stored = _SAFETENSORS_DTYPES.get(info.dtype)
        if stored is None:
            raise TypeError(f"dtype {info.dtype} is not analyzed")
        n = stop - start
        begin, _ = self._entries[info.name]
        offset = self._data_start + begin + start * stored.itemsize
        target = out[:n]
        if stored == np.float32:  # read straight into the output buffer
            self._read_into(offset, target.view(np.uint8))
            return target
        buffer = raw.view(np.uint8)[: n * stored.itemsize]
        self._read_into(offset, buffer)
        values = buffer.view(stored)
        if info.dtype == "BF16":
            bits = target.view(np.uint32)
            np.copyto(bits, values, casting="unsafe")
            np.left_shift(bits, 16, out=bits)
        else:
            np.copyto(target, values, casting="unsafe")
        return target

    def _read_into(self, offset: int, buffer: np.ndarray) -> None:
        view = memoryview(buffer)
        self._file.seek(offset)
        got = 0
        while got < len(view):
            n = self._file.readinto(view[got:])
            if not n:
                raise CheckpointFormatError(f"{self.path} ended early (truncated?)")
            got += n

    def close(self) -> None:
        self._file.close()


_TORCH_DTYPE_NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16"}


class _TorchFile(_Source):
    """A ``torch.save`` file, memory-mapped; tensors are found in ``module``/``state_dict``/
    ``model`` (DeepSpeed, Lightning) or anywhere in nested dicts."""

    def __init__(self, path: Path, notes: list[str]) -> None:
        import torch

        self.path = path
        self._mapped = True
        try:
            try:
                obj = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                notes.append(f"{path.name} is in torch's legacy (non-zip) format and was loaded whole")
                self._mapped = False
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # refused or corrupt: never retried with weights_only=False
            raise CheckpointFormatError(f"{path} cannot be read with torch.load(weights_only=True): {exc}") from exc
        self._tensors: dict[str, Any] = dict(_find_tensors(obj))
        self._flat: tuple[str, Any, bool] | None = None
        self._torch = torch

    def infos(self) -> Iterator[TensorInfo]:
        for name, tensor in self._tensors.items():
            dtype = _TORCH_DTYPE_NAMES.get(str(tensor.dtype).removeprefix("torch."), str(tensor.dtype).removeprefix("torch."))
            yield TensorInfo(name, dtype, tuple(tensor.shape), self.path)

    def alias(self, name: str, info: TensorInfo) -> None:
        self._tensors[name] = self._tensors[name.split(":", 1)[1]]

    def read(self, info: TensorInfo, start: int, stop: int, out: np.ndarray, raw: np.ndarray) -> np.ndarray:
        if not info.is_float:
            raise TypeError(f"dtype {info.dtype} is not analyzed")
        if self._flat is None or self._flat[0] != info.name:
            tensor = self._tensors[info.name]
            in_file = self._mapped and tensor.is_contiguous()
            self._flat = (info.name, tensor.reshape(-1) if tensor.is_contiguous() else tensor.contiguous().reshape(-1), in_file)
        _, flat, in_file = self._flat
        target = out[: stop - start]
        self._torch.from_numpy(target).copy_(flat[start:stop])
        if in_file:  # pages of the file mapping: hand back what was read (re-read from the file if needed)
            _release_pages(flat.data_ptr() + start * flat.element_size(), (stop - start) * flat.element_size())
        return target

    def done(self, info: TensorInfo) -> None:
        self._flat = None

    def close(self) -> None:
        self._tensors.clear()
        self._flat = None


def _find_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    import torch

    if isinstance(obj, torch.Tensor):
        yield prefix.rstrip("."), obj
        return
    if not isinstance(obj, dict):
        return
    for key in ("module", "state_dict", "model"):  # DeepSpeed / Lightning / plain wrappers
        if not prefix and isinstance(obj.get(key), dict):
            yield from _find_tensors(obj[key])
            return
    for key, value in obj.items():
        yield from _find_tensors(value, f"{prefix}{key}.")


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MADV_DONTNEED = 4


def _release_pages(address: int, nbytes: int) -> None:
    """Tell the kernel we are done with the whole pages of a file mapping (Linux): they leave
    the resident set and would be read again from the file if touched. Elsewhere a no-op."""
    if sys.platform != "linux":
        return
    start = -(-address // _PAGE) * _PAGE
    end = (address + nbytes) // _PAGE * _PAGE
    if end <= start:
        return
    libc = _libc()
    if libc is not None:
        libc.madvise(start, end - start, _MADV_DONTNEED)


_LIBC: list[Any] = []


def _libc() -> Any:
    if not _LIBC:
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            _LIBC.append(libc)
        except OSError:
            _LIBC.append(None)
    return _LIBC[0]

