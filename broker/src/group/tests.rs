//! Coordinator tests: paused tokio clock, in-memory `__consumer_offsets`.
