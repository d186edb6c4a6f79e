"""Business messaging: verified businesses, templates, opt-in, the 24-hour window, limits, quality."""
