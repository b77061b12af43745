"""``torch.nn.utils``: conv + batch-norm fusion for inference."""
from .fusion import fuse_conv_bn, fuse_conv_bn_eval, fuse_conv_bn_weights  # noqa: F401
