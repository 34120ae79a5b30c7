#!/usr/bin/env python3
# ggml's own quantizers and dequantizers on a set of test rows, for scripts/fidelity/quants.ts
# to hold ours against. Not part of `npm test`: it needs node-llama-cpp's libggml-base.so
# (installed on demand by scripts/fidelity/llama-cpp.ts) and Python's numpy and gguf packages.
#
#   python3 scripts/fidelity/ggml_quants.py <libggml-base.so> <input.f32> <rows> <cols> <out-dir>
#
# Writes, per ggml type: <NAME>.bin (ggml_quantize_chunk, or quantize_row_q8_1_ref / quantize_row_q8_K_ref
# for the activation types), <NAME>.ggml.f32 (the type's to_float on those bytes) and
# <NAME>.gguf.f32 (gguf-py's numpy dequantizer on the same bytes).
import ctypes
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType, quants

lib_path, input_path, rows, cols, out_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
lib = ctypes.CDLL(lib_path)


class TypeTraits(ctypes.Structure):
    _fields_ = [
        ("type_name", ctypes.c_char_p),
        ("blck_size", ctypes.c_int64),
        ("blck_size_interleave", ctypes.c_int64),
        ("type_size", ctypes.c_size_t),
        ("is_quantized", ctypes.c_bool),
        ("to_float", ctypes.c_void_p),
        ("from_float_ref", ctypes.c_void_p),
    ]


lib.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
lib.ggml_quantize_chunk.restype = ctypes.c_size_t
lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
ROW_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)

x = np.fromfile(input_path, dtype=np.float32)
assert x.size == rows * cols, (x.size, rows, cols)
os.makedirs(out_dir, exist_ok=True)

WEIGHTS = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"]
ACTIVATIONS = ["Q8_1", "Q8_K"]
for name in WEIGHTS + ACTIVATIONS:
    t = GGMLQuantizationType[name]
    tr = lib.ggml_get_type_traits(int(t)).contents
    nbytes = rows * (cols // tr.blck_size) * tr.type_size
    dst = np.zeros(nbytes, dtype=np.uint8)
    if name in WEIGHTS:
        written = lib.ggml_quantize_chunk(int(t), x.ctypes.data, dst.ctypes.data, 0, rows, cols, None)
        assert written == nbytes, (name, written, nbytes)
    else:
        fn = getattr(lib, f"quantize_row_{name.lower().replace('_k', '_K')}_ref")
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        fn(x.ctypes.data, dst.ctypes.data, rows * cols)
    dst.tofile(os.path.join(out_dir, f"{name}.bin"))
    back = np.zeros(rows * cols, dtype=np.float32)
    if tr.to_float:
        ROW_FN(tr.to_float)(dst.ctypes.data, back.ctypes.data, rows * cols)
        back.tofile(os.path.join(out_dir, f"{name}.ggml.f32"))
    try:
        g = quants.dequantize(dst.reshape(rows, -1), t).astype(np.float32).reshape(-1)
        g.tofile(os.path.join(out_dir, f"{name}.gguf.f32"))
    except NotImplementedError:
        pass
# The CPU backend's dot products (ggml_vec_dot_*: the build for this CPU, and the portable
# *_generic code) of weight row r with activation row (r + 1) % rows, the activations quantized
# by the CPU backend's own from_float for the type's vec_dot_type: <NAME>.act.bin (those
# activations), <NAME>.dot.f32 and <NAME>.dot_generic.f32.
cpu_dir = os.path.dirname(lib_path)
cpu = None
for variant in ["zen4", "alderlake", "haswell", "sandybridge", "sse42"]:
    try:
        ctypes.CDLL(lib_path, mode=ctypes.RTLD_GLOBAL)
        cpu = ctypes.CDLL(os.path.join(cpu_dir, f"libggml-cpu-{variant}.so"))
        cpu.ggml_cpu_init()
        break
    except OSError:
        cpu = None
if cpu is None:
    print("no CPU backend library")
    sys.exit(1)


class CpuTraits(ctypes.Structure):
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p), ("vec_dot_type", ctypes.c_int), ("nrows", ctypes.c_int64)]


cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(CpuTraits)
cpu.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
DOT_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
names = {int(v): k for k, v in GGMLQuantizationType.__members__.items()}
for name in WEIGHTS:
    t = GGMLQuantizationType[name]
    ct = cpu.ggml_get_type_traits_cpu(int(t)).contents
    vt = names[ct.vec_dot_type]
    vtr = lib.ggml_get_type_traits(ct.vec_dot_type).contents
    arow = (cols // vtr.blck_size) * vtr.type_size
    act = np.zeros(rows * arow, dtype=np.uint8)
    ROW_FN(cpu.ggml_get_type_traits_cpu(ct.vec_dot_type).contents.from_float)(x.ctypes.data, act.ctypes.data, rows * cols)
    act.tofile(os.path.join(out_dir, f"{name}.act.bin"))
    w = np.fromfile(os.path.join(out_dir, f"{name}.bin"), dtype=np.uint8)
    wrow = w.size // rows
    generic = DOT_FN(ctypes.cast(getattr(cpu, f"ggml_vec_dot_{name.lower().replace('_k', '_K')}_{vt.lower().replace('_k', '_K')}_generic"), ctypes.c_void_p).value)
    fast = DOT_FN(ct.vec_dot)
    for fn, suffix in [(fast, "dot"), (generic, "dot_generic")]:
        out = np.zeros(rows, dtype=np.float32)
        s = ctypes.c_float()
        for r in range(rows):
            a = (r + 1) % rows
            fn(cols, ctypes.byref(s), 0, w.ctypes.data + r * wrow, 0, act.ctypes.data + a * arow, 0, 1)
            out[r] = s.value
        out.tofile(os.path.join(out_dir, f"{name}.{suffix}.f32"))
print("ok")
