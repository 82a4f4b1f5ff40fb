"""Run a command as on a CPU without AMX: `python -m benchmarks.no_amx CMD [ARGS...]`.

Linux lends a process the AMX tiles only when it asks (`arch_prctl(ARCH_REQ_XCOMP_PERM)`);
a seccomp filter makes that request fail for CMD and every process it starts, so XNNPACK
(int8) and oneDNN (TensorFlow) fall back to their AVX-512 kernels. With
`ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI` TensorFlow leaves the bfloat16 units alone too: this
machine then computes as a CPU with AVX-512 VNNI and neither (docs/performance.md, int8).
Needs libseccomp (Debian's libseccomp2). Linux x86-64 only.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

ARCH_PRCTL = 158  # the syscall's number on x86-64
ARCH_REQ_XCOMP_PERM = 0x1023
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000  # | the errno returned
SCMP_CMP_MASKED_EQ = 7  # (arg & datum_a) == datum_b: the kernel reads the option as an int


class ArgCompare(ctypes.Structure):  # libseccomp's struct scmp_arg_cmp
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def refuse_amx() -> None:
    """From now on, this process and its children are refused the AMX tiles (EPERM)."""
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    ctx = ctypes.c_void_p(lib.seccomp_init(ctypes.c_uint32(SCMP_ACT_ALLOW)))
    rule = ArgCompare(0, SCMP_CMP_MASKED_EQ, 0xFFFFFFFF, ARCH_REQ_XCOMP_PERM)
    if lib.seccomp_rule_add_array(ctx, ctypes.c_uint32(SCMP_ACT_ERRNO | errno.EPERM), ARCH_PRCTL,
                                  1, ctypes.byref(rule)) or lib.seccomp_load(ctx):
        raise OSError("the seccomp filter could not be installed")
    lib.seccomp_release(ctx)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__.splitlines()[0])
    refuse_amx()
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
