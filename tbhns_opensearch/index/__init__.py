"""Index templates, documents and the ingest pipeline."""
