"""What the kernels emitted as LLVM vector IR share (packed.py, winograd.py, dwsimd.py): the vector
width of this CPU, the types, and the intrinsics and broadcasts of one codegen (`VecOps`)."""
import llvmlite.binding as llb
from llvmlite import ir
from numba.core import cgutils

AVX512 = "+avx512f" in llb.get_host_cpu_features().flatten().split(",")
#: floats per vector register (zmm with AVX-512, else ymm)
VW = 16 if AVX512 else 8
F32 = ir.FloatType()
I32 = ir.IntType(32)
I64 = ir.IntType(64)
VEC = ir.VectorType(F32, VW)
VEC_PTR = VEC.as_pointer()
MASK = ir.VectorType(ir.IntType(1), VW)
_LANES = ir.Constant(ir.VectorType(I64, VW), list(range(VW)))
_ALIGN = ir.Constant(I32, 4)


class VecOps:
    """FMA, masked loads and stores (lanes off touch no memory) and broadcasts, declared in the
    module of `builder`."""

    def __init__(self, builder: ir.IRBuilder) -> None:
        self.b = builder
        mod = builder.module
        self._fma = cgutils.get_or_insert_function(mod, ir.FunctionType(VEC, [VEC] * 3), f"llvm.fma.v{VW}f32")
        self._load = cgutils.get_or_insert_function(
            mod, ir.FunctionType(VEC, [VEC_PTR, I32, MASK, VEC]), f"llvm.masked.load.v{VW}f32.p0")
        self._store = cgutils.get_or_insert_function(
            mod, ir.FunctionType(ir.VoidType(), [VEC, VEC_PTR, I32, MASK]), f"llvm.masked.store.v{VW}f32.p0")
        self.zero = ir.Constant(VEC, None)

    def fma(self, a, b, c):
        """a * b + c, one rounding."""
        return self.b.call(self._fma, [a, b, c])

    def load(self, ptr, mask):
        """The vector at float* `ptr`, zero in the lanes `mask` leaves off."""
        return self.b.call(self._load, [self.b.bitcast(ptr, VEC_PTR), _ALIGN, mask, self.zero])

    def store(self, v, ptr, mask):
        self.b.call(self._store, [v, self.b.bitcast(ptr, VEC_PTR), _ALIGN, mask])

    def _splat(self, x, ty):
        undef = ir.Constant(ty, ir.Undefined)
        one = self.b.insert_element(undef, x, ir.Constant(I32, 0))
        return self.b.shuffle_vector(one, undef, ir.Constant(ir.VectorType(I32, VW), [0] * VW))

    def splat(self, x):
        """A float in every lane."""
        return self._splat(x, VEC)

    def splat_bit(self, bit):
        """An i1 in every lane of a mask."""
        return self._splat(bit, MASK)

    def lanes_below(self, left):
        """The mask of lanes whose index is below the i64 `left` (all of them from VW on)."""
        return self.b.icmp_signed("<", _LANES, self._splat(left, ir.VectorType(I64, VW)))
