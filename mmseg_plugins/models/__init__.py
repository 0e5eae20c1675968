from mmseg_plugins.models.backbone import SegSubNet, SegSuperNet
from mmseg_plugins.models.head import FixedHead, SearchableHead

__all__ = ["FixedHead", "SearchableHead", "SegSubNet", "SegSuperNet"]
