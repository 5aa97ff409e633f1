"""Graftzoo NLP plugin: transformer encoders for text classification and NER.

Importing this package is cheap: torch and transformers are imported only
when a backbone is built (``graftzoo_nlp.backbone``).
"""

__version__ = "0.1.0"
