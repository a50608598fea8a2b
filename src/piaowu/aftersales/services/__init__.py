"""After-sales writes, one module per workflow: `refunds`, `exchanges`, `cancellations`,
`waitlist`, `transfers`, `cases`, and the customer `notices` outbox they all write to."""
