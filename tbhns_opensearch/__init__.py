"""Taxonomy-based hard-negative sampling (TB-HNS) for personalized semantic product search on OpenSearch."""

__version__ = "0.1.0"
