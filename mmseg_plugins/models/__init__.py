from mmseg_plugins.models.backbone import SegSubNet, SegSuperNet
from mmseg_plugins.models.head import FixedHead, SearchableHead
from mmseg_plugins.models.segmentor import SuperNetEncoderDecoder

__all__ = ["FixedHead", "SearchableHead", "SegSubNet", "SegSuperNet", "SuperNetEncoderDecoder"]
