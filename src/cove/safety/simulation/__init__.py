"""A simulator of overlapping legitimate and abusive populations, to train and measure the detector on: the
relay cannot read messages, and no metadata-only labelled data set exists (docs/safety.md)."""
