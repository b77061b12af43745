"""``torch.nn.utils``: gradient clipping, and conv + batch-norm fusion for inference."""
from .clip_grad import clip_grad_norm_, clip_grad_value_  # noqa: F401
from .fusion import fuse_conv_bn, fuse_conv_bn_eval, fuse_conv_bn_weights  # noqa: F401
