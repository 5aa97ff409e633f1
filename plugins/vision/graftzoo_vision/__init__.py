"""Graftzoo vision plugin: timm backbones with real ImageNet weights, image data and the digits demo.

Importing this package is cheap: torch, timm and torchvision are imported only
by the modules that build networks and read images.
"""

__version__ = "0.1.0"
