"""Query encoding, pure request builders and the search client."""
