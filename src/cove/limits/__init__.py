"""Every rate limit of the relay: the pure rules (buckets, windows, caps), the table of limits with their fail
modes, and where their state lives (this process, or Redis for a fleet). Plumbing below every capability."""
