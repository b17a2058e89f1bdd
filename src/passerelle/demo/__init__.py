"""Demo data generator: the Maison Lumière retailer with its ground truth."""

from passerelle.demo.generate import DemoManifest, generate_demo

__all__ = ["DemoManifest", "generate_demo"]
