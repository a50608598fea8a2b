"""After-sales reads, one module per workflow (`refunds`, `waitlist`, `cases`, …)."""
