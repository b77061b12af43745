"""One file per op: oracle (array code on ``xp``), native dispatch, autograd Function, functional
wrapper, and a spec of test cases that tests, the demo and benchmarks iterate over
(``cucnn.ops.REGISTRY``)."""
from ._spec import REGISTRY, BenchCase, Case, OpSpec, bench_cases  # noqa: F401
from . import activation, conv2d, cross_entropy, pool2d, softmax  # noqa: F401  (each registers)
from . import adaptive_pool2d, batchnorm  # noqa: F401,E402  (each registers)
from . import depthwise_conv2d  # noqa: F401,E402  (registers)
