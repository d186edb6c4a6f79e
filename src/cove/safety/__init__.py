"""Safety: rate limits now; metadata-only spam and abuse detection later."""
