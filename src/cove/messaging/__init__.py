"""Store-and-forward messaging: per-device fan-out, durable queues, WebSocket delivery, receipts."""
